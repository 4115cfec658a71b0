#pragma once
// A trial function that beats: while the trial runs, a thread of the worker renews its
// heartbeat in the study database, so that a worker that dies (on any machine) loses its
// trial to another after the grace period, and a worker that lives keeps it.

#include "host/tune/study.h"

#include <string>

namespace bachlab::host {

/// `run`, with a TrialHeartbeat on `storage` every `interval_s` seconds for the trial it
/// runs, as `owner` (the owner the worker claims trials as).
TrialFunction with_heartbeat(TrialFunction run, const StorageUrl& storage, std::string owner, double interval_s);

}  // namespace bachlab::host
