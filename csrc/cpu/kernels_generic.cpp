// The CPU kernels for any x86-64 (SSE2) or other CPU.
#define FASTGEN_CPU_CAPABILITY generic
#include "attention_kernels_impl.h"
#include "lstm_kernels_impl.h"
#include "masked_conv_kernels_impl.h"
#include "pixelcnn_sampler_kernels_impl.h"
#include "draw_kernels_impl.h"
#include "wavenet_kernels_impl.h"
#include "vector_math_kernels_impl.h"
#include "items_kernels_impl.h"
#include "pixel_lstm_kernels_impl.h"
#include "pixelrnn_sampler_kernels_impl.h"
