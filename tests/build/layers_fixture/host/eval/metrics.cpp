#include "host/data/synth.h"
