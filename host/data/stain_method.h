#pragma once
// [data] stain_normalize's methods, apart from stain.h so that the config side (which the
// fuzz targets build without LibTorch) can name them.

#include "host/config/choice.h"

namespace bachlab::host {

/// [data] stain_normalize: none, or the method photos are normalised with.
enum class StainMethod { none, macenko, reinhard };
inline const Choice<StainMethod> kStainMethods{
    {"none", StainMethod::none}, {"macenko", StainMethod::macenko}, {"reinhard", StainMethod::reinhard}};

}  // namespace bachlab::host
