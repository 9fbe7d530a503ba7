"""One file per optimizer: its options, its formula templates and its registration.

The order here is the order the CLI, the README and the sheets list them in. Adding an
optimizer is a file beside these and its name on this line.
"""
from . import sgd, momentum, rmsprop, adam, adagrad, adamax, nadam  # noqa: F401
