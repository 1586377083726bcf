// Every fastgen op schema, in one place. Kernels register against these names per dispatch key
// (csrc/cpu/*.cpp for CPU, csrc/cuda/*_binding.cpp for CUDA); the Python side adds fake tensors,
// autograd and the Triton kernels (fastgen/ops/*.py).
#include <Python.h>
#include <torch/library.h>

#include <string>

namespace fastgen {
std::string cpu_capability();  // csrc/cpu/vector_math.cpp
c10::Dict<std::string, std::string> cpu_kernel_builds();  // csrc/cpu/vector_math.cpp
}

TORCH_LIBRARY(fastgen, m) {
  // Gaussian-filterbank attention (DRAW). params: [B, 5] raw window parameters.
  m.def("attention_read(Tensor x, Tensor params, int N) -> Tensor");
  m.def("attention_read_backward(Tensor grad_out, Tensor x, Tensor params, int N) -> (Tensor, Tensor)");
  m.def("attention_write(Tensor w, Tensor params, int H, int W, Tensor? canvas=None) -> Tensor");
  m.def("attention_write_backward(Tensor grad_out, Tensor w, Tensor params, int H, int W) -> (Tensor, Tensor)");

  // torch.nn.LSTMCell's pointwise update from pre-activation gates [B, 4D] (i, f, g, o) and c [B, D]:
  // -> (h', c', act), act [B, 5D] = the activations i, f, g, o, tanh c' that the backward uses.
  // An absent grad_h / grad_c counts as zeros.
  m.def("lstm_cell_pointwise(Tensor gates, Tensor c) -> (Tensor, Tensor, Tensor)");
  m.def("lstm_cell_pointwise_backward(Tensor? grad_h, Tensor? grad_c, Tensor act, Tensor c) -> (Tensor, Tensor)");

  // The whole generative pass of DRAW with write attention in one call (fast sampling):
  // noise [T, B, Z] -> canvas logits c_T [B, C, H, W]. Weights as in fastgen.models.DRAW.
  m.def("draw_generate(Tensor noise, Tensor w_ih, Tensor w_hh, Tensor bias, Tensor w_patch, Tensor b_patch, "
        "Tensor w_window, Tensor b_window, int channels, int height, int width) -> Tensor");

  // Masked convolutions (PixelCNN, Gated PixelCNN; fastgen.reference.masked_conv states them):
  // F.conv2d(x, weight * M, bias, padding=(kh // 2, kw // 2)), mask "A" | "B" (raster-order causal,
  // color_groups 1 or 3) | "V" (vertical stack). The backward returns the gradients output_mask
  // asks for (x, weight, bias), None for the others: a first layer's image input needs none.
  m.def("masked_conv2d(Tensor x, Tensor weight, Tensor? bias, str mask, int color_groups) -> Tensor");
  m.def("masked_conv2d_backward(Tensor grad_out, Tensor x, Tensor weight, str mask, int color_groups, "
        "bool[3] output_mask) -> (Tensor?, Tensor?, Tensor?)");

  // PixelRNN's recurrences (fastgen.reference.pixel_lstm states them): pre [B, 4h, H, W] gates o, f, i, g ->
  // (h [B, h, H, W], act, c), act [B, H, W, 5h] and c [B, H, W, h] the state the backward uses. Row LSTM:
  // w_ss [4h, h, k] along the previous row; Diagonal LSTM: w_ss [4h, h, 2] (above, left), reverse mirrors.
  m.def("row_lstm(Tensor pre, Tensor w_ss, Tensor? bias) -> (Tensor, Tensor, Tensor)");
  m.def("row_lstm_backward(Tensor grad_h, Tensor h, Tensor act, Tensor c, Tensor w_ss) -> (Tensor, Tensor)");
  m.def("diagonal_lstm(Tensor pre, Tensor w_ss, bool reverse) -> (Tensor, Tensor, Tensor)");
  m.def("diagonal_lstm_backward(Tensor grad_h, Tensor h, Tensor act, Tensor c, Tensor w_ss, bool reverse) -> (Tensor, Tensor)");

  // Cached WaveNet generation: n samples for every batch row in one call. The ring-buffer queues,
  // positions and last tokens are the generation state (fastgen.ops.wavenet.WaveNetCache), advanced
  // in place; weights are the packed list of csrc/cpu/wavenet_kernels.h. -> tokens [B, n]
  m.def("wavenet_generate(Tensor(a!) queues, Tensor(b!) positions, Tensor(c!) last_tokens, Tensor[] weights, "
        "int[] dilations, Tensor? cond, Tensor uniforms, Tensor lengths, float temperature) -> Tensor");

  // IRGAN's generator and evaluation (fastgen.reference.items states both): scores user . item + bias,
  // streamed over item tiles, never a [U, I] matrix. sample_items: inverse-CDF draws from
  // softmax(scores / temperature) on uniforms [U, k] -> items [U, k]; topk_items: the k best
  // (score, item) per user, ties to the lower index, the CSR exclusion lists skipped.
  m.def("sample_items(Tensor user_emb, Tensor item_emb, Tensor item_bias, Tensor uniforms, float temperature) -> Tensor");
  m.def("topk_items(Tensor user_emb, Tensor item_emb, Tensor item_bias, int k, Tensor? exclude_indptr=None, "
        "Tensor? exclude_indices=None) -> (Tensor, Tensor)");
  // Fast cached PixelCNN sampling; state advanced in place (csrc/cpu/pixelcnn_sampler.cpp states the arguments).
  m.def("pixelcnn_sample(Tensor(a!)[] caches, Tensor(b!) levels, Tensor(c!) position, Tensor[] weights, int[] dims, "
        "Tensor? cond, Tensor? uniforms, int pixels) -> Tensor");
  // Fast cached PixelRNN sampling, Row LSTM and Diagonal BiLSTM (csrc/cpu/pixelrnn_sampler.cpp states the arguments).
  m.def("pixelrnn_sample(Tensor(a!)[] caches, Tensor(b!) levels, Tensor(c!) position, Tensor[] weights, int[] dims, "
        "Tensor? uniforms, int pixels) -> Tensor");

  // Inspection of the CPU build (csrc/cpu/vector_math.cpp): the vector exp every CPU kernel shares, for
  // tests against torch.exp; the widest instruction-set build any family runs ("avx512", "avx2" or
  // "generic") and each family's (FASTGEN_CPU_CAPABILITY=avx2 or =generic forces a narrower one).
  m.def("exp_nonpositive(Tensor x) -> Tensor");
  m.def("cpu_capability() -> str", &fastgen::cpu_capability);
  m.def("cpu_kernel_builds() -> Dict(str, str)", &fastgen::cpu_kernel_builds);
}

// An empty Python module: importing fastgen._C loads this library, which registers the ops above.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "fastgen kernels (ops live in torch.ops.fastgen)",
                                      -1, nullptr};
  return PyModule_Create(&module);
}
