"""The collab lesson: matrix factorisation trained in formulas."""
from ...math import optim

#: The learning rate each optimizer trains this lesson's default data with, visibly and
#: without diverging, measured here; a variant registered ``lr_as`` another takes its rate.
LEARNING_RATES = optim.learning_rates(
    "collab", dict(sgd=5.0, momentum=1.0, rmsprop=0.02, adam=0.1, adagrad=0.3))
