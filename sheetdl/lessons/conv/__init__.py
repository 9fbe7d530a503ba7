"""The conv lesson: a convolutional network trained cell by cell."""
from ...math import optim

#: Learning rates that train the default network on the built-in glyphs in 40 steps,
#: measured; an optimizer registered ``lr_as`` another takes that one's.
LEARNING_RATES = optim.learning_rates(
    "conv", dict(sgd=0.2, momentum=0.02, rmsprop=0.002, adam=0.01, adagrad=0.05))
