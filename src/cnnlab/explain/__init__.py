"""See inside a CNN: the arithmetic of each step, written out.

:mod:`cnnlab.explain.trace` computes convolution, pooling, activations and
softmax on small inputs and returns every intermediate number with a sentence
showing it (``"(0x0) + (1x1) + (3x2) + (4x3) = 19"``), plus ``format_*``
functions that render a whole trace for the terminal.

Importing this package loads NumPy only; modules that draw pictures import
their plotting library inside the functions that need it.
"""
from .trace import (fmt, format_matrix, parse_matrix, parse_vector, parse_array,
                    trace_conv2d, trace_pool2d, trace_activation, trace_dense, trace_softmax,
                    trace_sigmoid, format_conv_trace, format_pool_trace, format_activation_trace,
                    format_dense_trace, format_softmax_trace, format_sigmoid_trace, format_trace)

__all__ = ["fmt", "format_matrix", "parse_matrix", "parse_vector", "parse_array",
           "trace_conv2d", "trace_pool2d", "trace_activation", "trace_dense", "trace_softmax",
           "trace_sigmoid", "format_conv_trace", "format_pool_trace", "format_activation_trace",
           "format_dense_trace", "format_softmax_trace", "format_sigmoid_trace", "format_trace"]
