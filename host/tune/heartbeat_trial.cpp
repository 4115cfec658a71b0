#include "host/tune/heartbeat_trial.h"

namespace bachlab::host {

TrialFunction with_heartbeat(TrialFunction run, const StorageUrl& storage, std::string owner, double interval_s) {
  return [run = std::move(run), storage, owner = std::move(owner), interval_s](const TrialRequest& request) {
    TrialHeartbeat beat(storage, request.trial.id, owner, interval_s);
    return run(request);
  };
}

}  // namespace bachlab::host
