"""The mlp lesson: one hidden ReLU layer trained by backprop."""
from ...math import optim

#: The learning rate each optimizer trains this lesson's default data with, visibly and
#: without diverging, measured here; a variant registered ``lr_as`` another takes its rate.
LEARNING_RATES = optim.learning_rates(
    "mlp", dict(sgd=0.1, momentum=0.05, rmsprop=0.01, adam=0.05, adagrad=0.1))
