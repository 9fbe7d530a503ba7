"""The graddesc lesson (and the lr finder on its data): y = b + a·x, one sample per row."""
from ...math import optim

#: The learning rate each optimizer trains this lesson's default data with, visibly and
#: without diverging, measured here; a variant registered ``lr_as`` another takes its rate.
LEARNING_RATES = optim.learning_rates(
    "graddesc", dict(sgd=1e-4, momentum=1e-5, rmsprop=0.1, adam=0.3, adagrad=1.0))
