Function SHEETDL_ADAM_STEP(params, grads, exp_avg, exp_avg_sq, step, Optional lr, Optional beta1, Optional beta2, Optional eps, Optional weight_decay, Optional backend)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_ADAM_STEP = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_ADAM_STEP", Array(params, grads, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, backend), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_ADAM_STEP = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_ADAM_STEP", Array(params, grads, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, backend))
        Exit Function
    #End If
failed:
    SHEETDL_ADAM_STEP = Err.Description
End Function

Function SHEETDL_COLLAB_PREDICT(user_factors, movie_factors, user_bias, movie_bias, Optional y_min, Optional y_max)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_COLLAB_PREDICT = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_COLLAB_PREDICT", Array(user_factors, movie_factors, user_bias, movie_bias, y_min, y_max), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_COLLAB_PREDICT = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_COLLAB_PREDICT", Array(user_factors, movie_factors, user_bias, movie_bias, y_min, y_max))
        Exit Function
    #End If
failed:
    SHEETDL_COLLAB_PREDICT = Err.Description
End Function

Function SHEETDL_COLLAB_TRAIN(ratings, Optional factors, Optional epochs, Optional lr, Optional weight_decay, Optional seed, Optional optimizer, Optional y_min, Optional y_max)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_COLLAB_TRAIN = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_COLLAB_TRAIN", Array(ratings, factors, epochs, lr, weight_decay, seed, optimizer, y_min, y_max), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_COLLAB_TRAIN = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_COLLAB_TRAIN", Array(ratings, factors, epochs, lr, weight_decay, seed, optimizer, y_min, y_max))
        Exit Function
    #End If
failed:
    SHEETDL_COLLAB_TRAIN = Err.Description
End Function

Function SHEETDL_CONV_PREDICT(images, kernels, kernel_bias, dense, dense_bias, Optional height)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_CONV_PREDICT = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_CONV_PREDICT", Array(images, kernels, kernel_bias, dense, dense_bias, height), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_CONV_PREDICT = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_CONV_PREDICT", Array(images, kernels, kernel_bias, dense, dense_bias, height))
        Exit Function
    #End If
failed:
    SHEETDL_CONV_PREDICT = Err.Description
End Function

Function SHEETDL_CONV_TRAIN(images, labels, Optional kernels, Optional steps, Optional lr, Optional optimizer, Optional seed, Optional output, Optional dropout, Optional kernel_init, Optional height)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_CONV_TRAIN = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_CONV_TRAIN", Array(images, labels, kernels, steps, lr, optimizer, seed, output, dropout, kernel_init, height), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_CONV_TRAIN = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_CONV_TRAIN", Array(images, labels, kernels, steps, lr, optimizer, seed, output, dropout, kernel_init, height))
        Exit Function
    #End If
failed:
    SHEETDL_CONV_TRAIN = Err.Description
End Function

Function SHEETDL_CROSS_ENTROPY(logits, targets)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_CROSS_ENTROPY = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_CROSS_ENTROPY", Array(logits, targets), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_CROSS_ENTROPY = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_CROSS_ENTROPY", Array(logits, targets))
        Exit Function
    #End If
failed:
    SHEETDL_CROSS_ENTROPY = Err.Description
End Function

Function SHEETDL_MLP_PREDICT(x, W1, b1, W2, b2)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_MLP_PREDICT = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_MLP_PREDICT", Array(x, W1, b1, W2, b2), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_MLP_PREDICT = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_MLP_PREDICT", Array(x, W1, b1, W2, b2))
        Exit Function
    #End If
failed:
    SHEETDL_MLP_PREDICT = Err.Description
End Function

Function SHEETDL_MLP_TRAIN(x, y, Optional hidden, Optional steps, Optional lr, Optional optimizer, Optional seed, Optional weight_decay, Optional output, Optional dropout, Optional batchnorm, Optional lr_layer1, Optional freeze_steps, Optional bn_momentum, Optional bn_eps)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_MLP_TRAIN = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_MLP_TRAIN", Array(x, y, hidden, steps, lr, optimizer, seed, weight_decay, output, dropout, batchnorm, lr_layer1, freeze_steps, bn_momentum, bn_eps), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_MLP_TRAIN = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_MLP_TRAIN", Array(x, y, hidden, steps, lr, optimizer, seed, weight_decay, output, dropout, batchnorm, lr_layer1, freeze_steps, bn_momentum, bn_eps))
        Exit Function
    #End If
failed:
    SHEETDL_MLP_TRAIN = Err.Description
End Function

Function SHEETDL_MOMENTUM_STEP(params, grads, velocity, lr, Optional momentum, Optional dampening, Optional nesterov)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_MOMENTUM_STEP = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_MOMENTUM_STEP", Array(params, grads, velocity, lr, momentum, dampening, nesterov), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_MOMENTUM_STEP = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_MOMENTUM_STEP", Array(params, grads, velocity, lr, momentum, dampening, nesterov))
        Exit Function
    #End If
failed:
    SHEETDL_MOMENTUM_STEP = Err.Description
End Function

Function SHEETDL_RMSPROP_STEP(params, grads, square_avg, lr, Optional alpha, Optional eps)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_RMSPROP_STEP = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_RMSPROP_STEP", Array(params, grads, square_avg, lr, alpha, eps), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_RMSPROP_STEP = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_RMSPROP_STEP", Array(params, grads, square_avg, lr, alpha, eps))
        Exit Function
    #End If
failed:
    SHEETDL_RMSPROP_STEP = Err.Description
End Function

Function SHEETDL_SGD_STEP(params, grads, lr, Optional weight_decay, Optional backend)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_SGD_STEP = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_SGD_STEP", Array(params, grads, lr, weight_decay, backend), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_SGD_STEP = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_SGD_STEP", Array(params, grads, lr, weight_decay, backend))
        Exit Function
    #End If
failed:
    SHEETDL_SGD_STEP = Err.Description
End Function

Function SHEETDL_SOFTMAX(logits, Optional backend)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_SOFTMAX = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_SOFTMAX", Array(logits, backend), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_SOFTMAX = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_SOFTMAX", Array(logits, backend))
        Exit Function
    #End If
failed:
    SHEETDL_SOFTMAX = Err.Description
End Function

Function SHEETDL_TRAIN_LINEAR(x, y, Optional optimizer, Optional lr, Optional epochs, Optional preset, Optional b_init, Optional a_init, Optional momentum, Optional beta1, Optional beta2, Optional eps, Optional weight_decay)
    #If App = "Microsoft Excel" Then
        If TypeOf Application.Caller Is Range Then On Error GoTo failed
        SHEETDL_TRAIN_LINEAR = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_TRAIN_LINEAR", Array(x, y, optimizer, lr, epochs, preset, b_init, a_init, momentum, beta1, beta2, eps, weight_decay), ThisWorkbook, Application.Caller)
        Exit Function
    #Else
        SHEETDL_TRAIN_LINEAR = XLPy.CallUDF("sheetdl.addin.classic", "SHEETDL_TRAIN_LINEAR", Array(x, y, optimizer, lr, epochs, preset, b_init, a_init, momentum, beta1, beta2, eps, weight_decay))
        Exit Function
    #End If
failed:
    SHEETDL_TRAIN_LINEAR = Err.Description
End Function

