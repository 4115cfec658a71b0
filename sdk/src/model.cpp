#include <bachlab/sdk/model.h>

namespace bachlab::sdk {

void check_spec(const ModelSpec& spec, const std::string& model, const InputNeeds& needs) {
  const bool channels_ok = needs.channels > 0 ? spec.channels == needs.channels : spec.channels >= 1;
  if (channels_ok && spec.height >= needs.min_side && spec.width >= needs.min_side && spec.num_classes >= 2) return;
  const std::string side = std::to_string(needs.min_side) + "x" + std::to_string(needs.min_side);
  const std::string expected =
      needs.channels == 3 ? "3-channel (RGB) images of at least " + side + " pixels"
      : needs.channels > 0 ? std::to_string(needs.channels) + "-channel images of at least " + side + " pixels"
                           : "an input of at least 1 channel and " + side + " pixels";
  throw Error("model \"" + model + "\": expected " + expected + " and at least 2 classes, found " +
              std::to_string(spec.channels) + " channels, " + std::to_string(spec.width) + "x" +
              std::to_string(spec.height) + " pixels and " + std::to_string(spec.num_classes) + " classes; " +
              needs.advice);
}

}  // namespace bachlab::sdk
