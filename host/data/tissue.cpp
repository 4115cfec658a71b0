#include "host/data/tissue.h"

namespace bachlab::host {

double tissue_fraction(const torch::Tensor& image) {
  if (image.scalar_type() != torch::kUInt8 || image.numel() == 0) return 1.0;
  return image.lt(kGlassLevel).any(0).to(torch::kFloat32).mean().item<double>();
}

}  // namespace bachlab::host
