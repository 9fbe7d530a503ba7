"""The graddesc lesson (and the lr finder on its data): y = b + a·x, one sample per row."""
from ...math import optim

#: Learning rates that train visibly in 5 epochs on the course's data (x up to 99),
#: measured per optimizer; an optimizer registered ``lr_as`` another takes that one's.
LEARNING_RATES = optim.learning_rates(
    "graddesc", dict(sgd=1e-4, momentum=1e-5, rmsprop=0.1, adam=0.3, adagrad=1.0))
