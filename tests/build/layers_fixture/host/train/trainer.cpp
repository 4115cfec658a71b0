#include "host/eval/metrics.h"
