"""Custom-function calls as Excel sends them to the Office.js runtimes (xlwings Server
and Lite): each argument a 2-D array of cells, an omitted optional argument null."""

#: one good call of each function, whose arguments the fuzz below replaces one at a time
GOOD = {
    "softmax": [[[1.0, 2.0]], None],
    "cross_entropy": [[[1.0, 2.0], [0.5, 0.1]], [[0], [1]]],
    "sgd_step": [[[1.0, 2.0]], [[0.1, 0.2]], [[0.1]], None, None],
    "momentum_step": [[[1.0]], [[0.5]], [[0.0]], [[0.1]], None, None, None],
    "rmsprop_step": [[[1.0]], [[0.5]], [[0.0]], [[0.01]], None, None],
    "adam_step": [[[1.0]], [[0.5]], [[0.0]], [[0.0]], [[1]], None, None, None, None, None,
                  None],
    "train_linear": [[[1.0], [2.0], [3.0]], [[3.0], [5.0], [7.0]], [["sgd"]], [[0.01]],
                     [[2]], None, None, None, None, None, None, None, None],
    "collab_predict": [[[1.0, 0.5]], [[1.0], [0.5]], [[0.1]], [[0.2]], None, None],
    "collab_train": [[[4.0, 3.0], [5.0, None]], [[2]], [[3]], None, None, None, None, None,
                     None],
    "mlp_train": [[[0.0], [1.0], [2.0]], [[0.0], [1.0], [0.5]], [[3]], [[4]], None, None,
                  None, None, None],
    "mlp_predict": [[[0.5]], [[1.0], [-1.0]], [[0.0], [0.0]], [[1.0, 1.0]], [[0.0]]],
    "conv_train": [[[v / 16 for v in range(16)], [1 - v / 16 for v in range(16)]], [[0], [1]],
                   [[1]], [[2]], None, None, None, None, None, None, None],
    "conv_predict": [[[v / 16 for v in range(16)]], [[0.1] * 9], [[0.0]], [[1.0], [-1.0]],
                     [[0.0], [0.0]], None],
}
#: what a hostile or careless caller sends in place of one argument
HOSTILE = [[], [[]], [[], []], {"type": "x"}, [[{"a": 1}]], [[1.0], [2.0, 3.0]], "text",
           [["text"]], [[True]], [[10 ** 4299]], [[1e308]], [[-1e308]], [[None]],
           [[1.0, 2.0], [3.0, 4.0]], [[[1.0]]], 7, [["1e999"]], [[-1]], [[0]], [[0.5]],
           [["adam"]], [[""]]]
