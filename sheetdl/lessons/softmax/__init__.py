"""The softmax lesson: softmax regression trained full batch."""
from ...math import optim

#: The learning rate each optimizer trains this lesson's default data with, visibly and
#: without diverging, measured here; a variant registered ``lr_as`` another takes its rate.
LEARNING_RATES = optim.learning_rates(
    "softmax", dict(sgd=0.5, momentum=0.1, rmsprop=0.02, adam=0.05, adagrad=0.3))
