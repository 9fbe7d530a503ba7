"""The softmax lesson: softmax regression trained full batch."""
from ...math import optim

#: Learning rates that train the default data visibly in 50 steps, measured;
#: an optimizer registered ``lr_as`` another takes that one's.
LEARNING_RATES = optim.learning_rates(
    "softmax", dict(sgd=0.5, momentum=0.1, rmsprop=0.02, adam=0.05, adagrad=0.3))
