#pragma once
// The data path in one include, for the trainer: config -> discover -> prepare (cached)
// -> split -> per-batch float tensors. See docs/data.md.

#include "host/data/data_config.h"
#include "host/data/dataset.h"
#include "host/data/image_decode.h"
#include "host/data/image_tensor.h"
#include "host/data/prepare.h"
#include "host/data/split.h"
#include "host/data/stain.h"
