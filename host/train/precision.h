#pragma once
// How the training step and prediction compute: the number format of the forward pass
// ([train] precision) and the memory layout of images and convolution weights
// ([train] channels_last).
//
// bf16 is LibTorch's automatic mixed precision (autocast): matrix products and
// convolutions run in bfloat16, which this project's CPUs with AVX-512 BF16 (and CUDA
// devices) compute about twice as fast, while weights, gradients, optimizer state, losses
// and softmax stay float32. bfloat16 keeps float32's exponent range, so no loss scaling is
// needed (fp16's underflow problem does not arise). Channels-last (NHWC) is the layout
// oneDNN's convolutions prefer on CPUs; the numbers are the same up to summation order.
//
// A CPU without bf16 instructions would emulate it, slower than float32: there bf16 falls
// back to fp32 with a warning (resolve_precision), never silently.

#include "host/config/choice.h"
#include "host/train/callback.h"

#include <torch/torch.h>

#include <optional>
#include <string>

namespace bachlab::sdk {
class Network;
}

namespace bachlab::host {

/// [train] precision.
enum class Precision { fp32, bf16 };
inline const Choice<Precision> kPrecisions{{"fp32", Precision::fp32}, {"bf16", Precision::bf16}};

/// True when `device` computes bfloat16 natively: a CUDA device, or a CPU with AVX-512 BF16
/// or AMX-BF16 instructions.
bool native_bf16(const torch::Device& device);

/// The precision a run uses: `requested`, or fp32 when it is bf16 and the device lacks
/// native bf16, in which case `warning` says so (empty otherwise).
Precision resolve_precision(Precision requested, const torch::Device& device, std::string& warning);

/// While alive, the forward passes of this thread on `device` run under autocast to
/// bfloat16 (for Precision::bf16; nothing for fp32). Restores the previous state after.
class AutocastScope {
 public:
  AutocastScope(Precision precision, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

/// The training step's half of mixed precision, as a callback: the forward pass and the
/// loss of each batch run in an AutocastScope (on_batch_begin to on_before_backward);
/// backward follows the types the forward chose. Trainer::predict opens its own scope.
class MixedPrecision : public TrainingCallback {
 public:
  explicit MixedPrecision(Precision precision) : precision_(precision) {}
  void on_batch_begin(Trainer& trainer, const BatchBegin&) override;
  void on_before_backward(Trainer&) override { scope_.reset(); }

 private:
  Precision precision_;
  std::optional<AutocastScope> scope_;
};

/// Converts every 4-D parameter and buffer of `model` (convolution weights) to the
/// channels-last layout, in place; optimizer state made later follows their layout.
void to_channels_last(sdk::Network& model);

/// `images` in the layout the model's weights use: channels-last for 4-D images when
/// `channels_last`, unchanged otherwise.
torch::Tensor model_layout(const torch::Tensor& images, bool channels_last);

}  // namespace bachlab::host
