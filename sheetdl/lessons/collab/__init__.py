"""The collab lesson: matrix factorisation trained in formulas."""
from ...math import optim

#: Full-batch learning rates that bring the default data's RMSE down in 20 epochs,
#: measured; an optimizer registered ``lr_as`` another takes that one's.
LEARNING_RATES = optim.learning_rates(
    "collab", dict(sgd=5.0, momentum=1.0, rmsprop=0.02, adam=0.1, adagrad=0.3))
