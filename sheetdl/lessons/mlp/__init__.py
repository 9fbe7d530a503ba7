"""The mlp lesson: one hidden ReLU layer trained by backprop."""
from ...math import optim

#: Learning rates that bend the default network onto the sine in 100 steps, measured;
#: an optimizer registered ``lr_as`` another takes that one's.
LEARNING_RATES = optim.learning_rates(
    "mlp", dict(sgd=0.1, momentum=0.05, rmsprop=0.01, adam=0.05, adagrad=0.1))
