// Body of the fast cached PixelRNN sampler (pixelrnn_sampler_kernels.h), compiled once per ISA,
// included after lstm_kernels_impl.h (the LSTM element math the recurrence ops use) and
// pixelcnn_sampler_kernels_impl.h (its small-GEMM, conv-at-one-pixel, head-layer and draw helpers).
//
// Per pixel q = (r, c) and colour pass g, for one batch row: the mask-A conv's group g at q; per
// layer, the input-to-state of group g at q (the Row LSTM's 1 x k conv reads the layer input's
// current row up to q), plus the state-to-state of cells already complete (Row LSTM: the row above,
// columns c - k/2 .. c + k/2; Diagonal left direction: the cell above and the cell to the left), one
// LSTM cell per gate slice of group g, the residual 1x1 (and skip) of group g; then the head and the
// draw of sub-pixel g (or, teacher-forced, the given level and its logits), written into the image
// ring before the next pass. The Diagonal BiLSTM's right direction sees the whole row, so it runs
// once per completed row r (its input, the layer inputs along row r, is then final) and feeds row
// r + 1: the one-row shift of the BiLSTM. A pixel does O(1) cell work per layer, a row O(W) more.
#include <cstring>

#include "fastgen/small_gemm.h"
#include "pixelrnn_sampler_kernels.h"

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

// The LSTM cell on n channels of one colour group: gates [o | f | i | g] (n each), c_prev -> c, h.
static void rnn_cell(int64_t n, const float* gates, const float* c_prev, float* c, float* h) {
  for (int64_t j = 0; j < n; j += L8) {
    Vec<float> hj, cn, act[5];
    lstm_forward_element<Vec<float>>(vload(gates + 2 * n + j), vload(gates + n + j), vload(gates + 3 * n + j),
                                     vload(gates + j), vload(c_prev + j), &hj, &cn, act);
    vstore(c + j, cn);
    vstore(h + j, hj);
  }
}

// The Diagonal BiLSTM's right direction along the completed row r of layer l: pre-activations of the
// whole row as one GEMM, then the cells from the right edge leftwards, every colour group at once.
static void right_direction_row(const RnnSamplerPlan& p, const RnnSamplerLayer& layer, const SamplerRing* rings,
                                int64_t r, float* pre) {
  const int64_t W = p.W, Y = p.Y, Hd = p.Hd, Gw = 4 * Hd, n = Hd / p.C;
  const SamplerRing &y = rings[0], &h = rings[3], &c = rings[4];
  set_rows(W, Gw, pre, Gw, nullptr, 0, nullptr, 0, layer.in_right.b);
  mac(W, Y, Gw, y.at(0, r, 0), Y, layer.in_right.w, Gw, pre, Gw);
  for (int64_t col = W - 1; col >= 0; --col) {
    float* gates = pre + col * Gw;
    mac(1, Hd, Gw, h.at(0, r - 1, col), 0, layer.ss_right, Gw, gates, Gw);
    mac(1, Hd, Gw, h.at(0, r, col + 1), 0, layer.ss_right + Hd * Gw, Gw, gates, Gw);
    for (int64_t g = 0; g < p.C; ++g)
      rnn_cell(n, gates + 4 * g * n, c.at(0, r, col + 1) + g * n, c.at(0, r, col) + g * n, h.at(0, r, col) + g * n);
  }
}

// Layer l's output h at (r, c), colour group g, for the residual and skip 1x1s: returns h (all groups
// <= g final). gates: scratch [Gw]; hs: the layer's combined-h scratch (Diagonal).
static const float* layer_cell(const RnnSamplerPlan& p, const RnnSamplerLayer& layer, const SamplerRing* rings,
                               int64_t r, int64_t c, int64_t g, float* gates, float* hs) {
  const int64_t G = p.C, Hd = p.Hd, Gw = 4 * Hd, n = Hd / G;
  float* gg = gates + 4 * g * n;
  conv_at(layer.in_left, rings[0], r, c, g, G, 1, gates, Gw);
  const SamplerRing &h = rings[1], &cell = rings[2];
  if (p.kind == kRowLstmKind) {
    mac(1, p.taps * Hd, 4 * n, h.at(0, r - 1, c - p.taps / 2), 0, layer.ss_left + 4 * g * n, Gw, gg, Gw);
    rnn_cell(n, gg, cell.at(0, r - 1, c) + g * n, cell.at(0, r, c) + g * n, h.at(0, r, c) + g * n);
    return h.at(0, r, c);
  }
  mac(1, Hd, 4 * n, h.at(0, r - 1, c), 0, layer.ss_left + 4 * g * n, Gw, gg, Gw);
  mac(1, Hd, 4 * n, h.at(0, r, c - 1), 0, layer.ss_left + Hd * Gw + 4 * g * n, Gw, gg, Gw);
  float* hl = h.at(0, r, c) + g * n;
  rnn_cell(n, gg, cell.at(0, r, c - 1) + g * n, cell.at(0, r, c) + g * n, hl);
  const float* hr = rings[3].at(0, r - 1, c) + g * n;  // the right direction one row up (zero above row 0)
  for (int64_t j = 0; j < n; j += L8) vstore(hs + g * n + j, vload(hl + j) + vload(hr + j));
  return hs;
}

void run_pixelrnn(const RnnSamplerPlan& p, const RnnSamplerState& s, float* scratch) {
  const int64_t G = p.C, L = p.L, Y = p.Y, yg = Y / G, Hd = p.Hd, Gw = 4 * Hd, HW = p.H * p.W;
  const int64_t O = p.head1.cout, og = O / G, Out = p.head2.cout, outg = Out / G, per = rnn_rings_per_layer(p.kind);
  float* ys = scratch;              // [L+1][Y] the residual stream after the input conv and each layer
  float* skip = ys + (L + 1) * Y;   // [Y]      the summed skips
  float* x = skip + Y;              // [Y]      the head's input after its ReLU
  float* hs = x + Y;                // [L][Hd]  each layer's output h (Diagonal: both directions)
  float* gates = hs + L * Hd;       // [Gw]
  float* pre = gates + Gw;          // [W][Gw]  right-direction pre-activations of a row
  float* hid = pre + p.W * Gw;      // [O]
  float* rh = hid + O;              // [O]
  float* lg = rh + O;               // [Out]
  float* e = lg + Out;              // [Out]
  const SamplerRing& image = s.rings[0];
  for (int64_t i = 0; i < s.pixels; ++i) {
    const int64_t q = s.position + i, r = q / p.W, c = q % p.W;
    zero_at(image, 1, r, c);  // a ring slot's last use was an earlier row
    for (int64_t l = 0; l < L; ++l) zero_at(s.rings[1 + l * per], 1, r, c);
    for (int64_t g = 0; g < G; ++g) {
      conv_at(p.first, image, r, c, g, G, 1, ys, Y);
      for (int64_t l = 0; l < L; ++l) {
        const RnnSamplerLayer& layer = p.layers[l];
        const SamplerRing* rings = s.rings + 1 + l * per;
        const float* y_in = ys + l * Y + g * yg;
        float* y_out = ys + (l + 1) * Y + g * yg;
        std::memcpy(rings[0].at(0, r, c) + g * yg, y_in, yg * sizeof(float));
        const float* h = layer_cell(p, layer, rings, r, c, g, gates, hs + l * Hd);
        set_rows(1, yg, y_out, Y, y_in, Y, nullptr, 0, layer.out.b + g * yg);
        dense_into(layer.out, h, Hd, g, G, 1, ys + (l + 1) * Y, Y);
        if (layer.skip.w != nullptr) {
          set_rows(1, yg, skip + g * yg, Y, l == 0 ? nullptr : skip + g * yg, Y, nullptr, 0, layer.skip.b + g * yg);
          dense_into(layer.skip, h, Hd, g, G, 1, skip, Y);
        }
      }
      const float* top = ys + L * Y + g * yg;
      const bool skips = p.layers[0].skip.w != nullptr;
      for (int64_t j = 0; j < yg; j += L8) {
        const Vec<float> v = skips ? vload(top + j) + vload(skip + g * yg + j) : vload(top + j);
        vstore(x + g * yg + j, v > 0.0f ? v : Vec<float>{});
      }
      set_rows(1, og, hid + g * og, O, nullptr, 0, nullptr, 0, p.head1.b + g * og);
      dense_into(p.head1, x, Y, g, G, 1, hid, O);
      relu_rows(1, og, hid + g * og, O, rh + g * og, O);
      set_rows(1, outg, lg + g * outg, Out, nullptr, 0, nullptr, 0, p.head2.b + g * outg);
      dense_into(p.head2, rh, O, g, G, 1, lg, Out);
      int64_t* level = s.levels + g * HW + q;
      if (s.uniforms != nullptr) {
        *level = draw(lg + g * outg, p.K, s.uniforms[g * s.pixels + i], e);
      } else {
        std::memcpy(s.logits + (i * G + g) * p.K, lg + g * outg, p.K * sizeof(float));
      }
      image.at(0, r, c)[g * (image.channels / G)] = p.input_table[*level];
    }
    if (p.kind == kDiagonalBiLstmKind && c == p.W - 1)
      for (int64_t l = 0; l < L; ++l) right_direction_row(p, p.layers[l], s.rings + 1 + l * per, r, pre);
  }
}

}  // namespace

RnnSamplerKernels rnn_sampler_kernels() { return RnnSamplerKernels{&run_pixelrnn}; }

}  // namespace FASTGEN_CPU_CAPABILITY
}  // namespace cpu
}  // namespace fastgen
