// Wrong: a data source including the commands' header, as host/data did before cli/ owned the commands.
#include "host/cli/commands.h"
#include "host/data/synth.h"
