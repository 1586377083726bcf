// Which weights of a masked convolution are live, shared by the CPU and CUDA kernels
// (fastgen.reference.masked_conv states the masks; this is the same rule per tap and channel).
//
// weight [Cout, Cin, kh, kw], kh and kw odd, centre (cy, cx) = (kh / 2, kw / 2).
//   A / B: taps in rows above the centre row and left of the centre in its row are live for every
//          channel pair; at the centre, channel c of C is in colour group c * groups / C and output
//          group g sees input groups < g (A) or <= g (B). With one group: A drops the centre, B keeps it.
//   V:     taps in rows <= the centre row, every column (the Gated PixelCNN's vertical stack).
// With contiguous groups the live centre entries of one output channel are a prefix of the input
// channels, and those of one input channel a suffix of the output channels: the kernels loop over
// these ranges instead of testing each weight.
#pragma once

#include <cstdint>

#include "fastgen/macros.h"

namespace fastgen {
namespace masked_conv {

enum Mask : int { kMaskA = 0, kMaskB = 1, kMaskV = 2 };

FASTGEN_INLINE int64_t group_of(int64_t c, int64_t channels, int64_t groups) { return c * groups / channels; }

// Whether the weights of an off-centre tap (ky, kx) are live (all of them or none).
FASTGEN_INLINE bool off_centre_live(int mask, int64_t ky, int64_t kx, int64_t kh, int64_t kw) {
  const int64_t cy = kh / 2, cx = kw / 2;
  if (mask == kMaskV) return ky <= cy;
  return ky < cy || (ky == cy && kx < cx);
}

// Centre tap: output channel co sees input channels [0, centre_in_end).
FASTGEN_INLINE int64_t centre_in_end(int mask, int64_t co, int64_t cout, int64_t cin, int64_t groups) {
  if (mask == kMaskV) return cin;
  return (group_of(co, cout, groups) + (mask == kMaskB ? 1 : 0)) * (cin / groups);
}

// Centre tap: input channel ci is seen by output channels [centre_out_begin, Cout).
FASTGEN_INLINE int64_t centre_out_begin(int mask, int64_t ci, int64_t cin, int64_t cout, int64_t groups) {
  if (mask == kMaskV) return 0;
  return (group_of(ci, cin, groups) + (mask == kMaskA ? 1 : 0)) * (cout / groups);
}

// Whether the tap has any live weight (the kernels visit only these).
FASTGEN_INLINE bool tap_live(int mask, int64_t ky, int64_t kx, int64_t kh, int64_t kw, int64_t cout, int64_t cin,
                             int64_t groups) {
  if (ky == kh / 2 && kx == kw / 2) return centre_in_end(mask, cout - 1, cout, cin, groups) > 0;
  return off_centre_live(mask, ky, kx, kh, kw);
}

// Whether weight[co, ci, ky, kx] is live.
FASTGEN_INLINE bool weight_live(int mask, int64_t co, int64_t ci, int64_t ky, int64_t kx, int64_t kh, int64_t kw,
                                int64_t cout, int64_t cin, int64_t groups) {
  if (ky == kh / 2 && kx == kw / 2) return ci < centre_in_end(mask, co, cout, cin, groups);
  return off_centre_live(mask, ky, kx, kh, kw);
}

}  // namespace masked_conv
}  // namespace fastgen
