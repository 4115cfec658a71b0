#include "host/cli/commands.h"
#include "host/data/synth.h"
