#include "host/train/mlflow_log.h"

#include "host/train/run_folder.h"
#include "host/train/trainer.h"
#include "host/util/atomic_file.h"
#include "host/util/interrupt.h"

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/hash.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <yaml-cpp/yaml.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <sstream>
#include <ostream>
#include <random>
#include <utility>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The top-level string `key` of a meta.yaml (MLflow's or ours); "" without one or if the
// file is not YAML.
std::string yaml_value(const fs::path& meta, const std::string& key) {
  try {
    const YAML::Node node = YAML::LoadFile(meta.string())[key];
    return node.IsScalar() ? node.as<std::string>() : "";
  } catch (const YAML::Exception&) {
    return "";
  }
}

// A meta.yaml's emitter: one mapping, strings single-quoted (as MLflow's own quote ids
// such as '0', so that they read back as strings).
class MetaYaml {
 public:
  MetaYaml() { out_ << YAML::BeginMap; }
  MetaYaml& text(const char* key, const std::string& value) {
    out_ << YAML::Key << key << YAML::Value << YAML::SingleQuoted << value;
    return *this;
  }
  MetaYaml& empty_list(const char* key) {
    out_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
    return *this;
  }
  template <typename T>
  MetaYaml& plain(const char* key, const T& value) {
    out_ << YAML::Key << key << YAML::Value << value;
    return *this;
  }
  std::string str() {
    out_ << YAML::EndMap;
    return std::string(out_.c_str()) + "\n";
  }

 private:
  YAML::Emitter out_;
};

// file:///... as Python's pathlib.Path.as_uri() writes an absolute path.
std::string file_uri(const fs::path& path) {
  std::string out = "file://";
  for (const unsigned char c : path.string()) {
    if (std::isalnum(c) || std::string("/-._~").find(static_cast<char>(c)) != std::string::npos)
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

// A key as MLflow accepts it for params, metrics and tags (letters, digits, '_', '-', '.',
// ' ', '/'); a TOML key may hold more (quoted keys).
std::string mlflow_key(std::string key) {
  for (char& c : key)
    if (!std::isalnum(static_cast<unsigned char>(c)) && std::string("_-. /").find(c) == std::string::npos) c = '_';
  return key;
}

// Who runs it, as MLflow's getpass.getuser() says: $USER, else the account's name.
std::string user_name() {
  if (const char* user = std::getenv("USER"); user && *user) return user;
  const passwd* account = getpwuid(getuid());
  return account ? account->pw_name : "";
}

// A run id as MLflow makes one: uuid4().hex, 32 hex digits.
std::string new_run_id() {
  std::random_device device;
  std::string id;
  for (int i = 0; i < 4; ++i) id += fmt::format("{:08x}", device());
  return id;
}

std::string experiment_meta(const fs::path& store, const std::string& id, const std::string& name, int64_t time) {
  return MetaYaml()
      .plain("artifact_location", file_uri(store / id))
      .plain("creation_time", time)
      .text("experiment_id", id)
      .plain("last_update_time", time)
      .plain("lifecycle_stage", "active")
      .text("name", name)
      .str();
}

// The id of the experiment called `name` in `store`, made if there is none. The store is
// made as MLflow makes it: with experiment 0, "Default", and a .trash folder.
std::string find_or_make_experiment(const fs::path& store, const std::string& name) {
  if (!fs::exists(store)) {
    fs::create_directories(store / "0");
    fs::create_directories(store / ".trash");
    write_file_atomic(store / "0" / "meta.yaml", experiment_meta(store, "0", "Default", now_ms()));
  }
  for (const auto& entry : fs::directory_iterator(store)) {
    const fs::path meta = entry.path() / "meta.yaml";
    if (entry.is_directory() && fs::is_regular_file(meta) && yaml_value(meta, "name") == name)
      return entry.path().filename().string();
  }
  // An id from the name (MLflow 2 also makes large integer ids), so two runs making the same
  // experiment at once make the same one; the next free one if another name holds it.
  uint64_t id = sdk::hash_text(name) % 1000000000000000000ull;
  for (;; ++id) {
    const fs::path folder = store / std::to_string(id);
    if (fs::create_directory(folder)) {
      write_file_atomic(folder / "meta.yaml", experiment_meta(store, std::to_string(id), name, now_ms()));
      return std::to_string(id);
    }
    if (fs::is_regular_file(folder / "meta.yaml") && yaml_value(folder / "meta.yaml", "name") == name)
      return std::to_string(id);
  }
}

// The per-epoch metrics: history.csv's columns.
std::vector<std::pair<const char*, double>> epoch_metrics(const EpochRecord& r) {
  return {{"lr", r.lr},
          {"train_loss", r.train.loss},
          {"train_accuracy", r.train.accuracy},
          {"train_auroc_micro", r.train.auroc_micro},
          {"train_auroc_macro", r.train.auroc_macro},
          {"val_loss", r.val.loss},
          {"val_accuracy", r.val.accuracy},
          {"val_auroc_micro", r.val.auroc_micro},
          {"val_auroc_macro", r.val.auroc_macro},
          {"epoch_seconds", r.seconds}};
}

std::string metric_line(double value, int64_t time, int64_t step) {
  return fmt::format("{} {} {}\n", time, value, step);
}

}  // namespace

MlflowLog::MlflowLog(const fs::path& store, const fs::path& run_dir, const std::string& experiment,
                     const Config& config, std::ostream* warnings)
    : store_(fs::absolute(store).lexically_normal()), warnings_(warnings) {
  const fs::path record = run_dir / kMlflowRunFile;
  try {
    if (fs::exists(record)) {
      // A resumed run: the MLflow run it started, wherever its store was.
      const nlohmann::json j = nlohmann::json::parse(read_file(record));
      store_ = j.at("store").get<std::string>();
      experiment_id_ = j.at("experiment_id").get<std::string>();
      run_id_ = j.at("run_id").get<std::string>();
      run_name_ = j.at("run_name").get<std::string>();
      start_ms_ = j.at("start_time").get<int64_t>();
      fs::create_directories(run_folder() / "metrics");
      write_run_meta(Status::running, 0);
      return;
    }
    experiment_id_ = find_or_make_experiment(store_, experiment);
    run_id_ = new_run_id();
    // The folder's name below its experiment's: 20240101-120000, 20240101-120000/fold-2.
    const fs::path folder = run_dir.lexically_normal();
    run_name_ = folder.lexically_relative(outermost_run_folder(folder).parent_path()).generic_string();
    start_ms_ = now_ms();
    for (const char* folder : {"metrics", "params", "tags", "artifacts"}) fs::create_directories(run_folder() / folder);
    write_run_meta(Status::running, 0);
    for (const auto& setting : config.settings(Config::Paths::absolute)) {
      const auto* text = std::get_if<std::string>(&setting.value);
      write_file_atomic(run_folder() / "params" / mlflow_key(setting.key), text ? *text : sdk::to_string(setting.value));
    }
    std::vector<std::pair<std::string, std::string>> tags = {{"mlflow.runName", run_name_},
                                                             {"mlflow.user", user_name()},
                                                             {"mlflow.source.name", "bachlab"},
                                                             {"mlflow.source.type", "LOCAL"},
                                                             {"bachlab.run_dir", fs::absolute(run_dir).string()}};
    // A fold, refit or member: the child of the run folder that holds it.
    const fs::path parent = run_dir.parent_path() / kMlflowRunFile;
    if (fs::exists(parent))
      tags.emplace_back("mlflow.parentRunId", nlohmann::json::parse(read_file(parent)).at("run_id").get<std::string>());
    for (const auto& [name, value] : tags) write_file_atomic(run_folder() / "tags" / name, value);
    write_file_atomic(record, nlohmann::json{{"store", store_.string()},
                                             {"experiment_id", experiment_id_},
                                             {"run_id", run_id_},
                                             {"run_name", run_name_},
                                             {"start_time", start_ms_}}
                                  .dump(2) + "\n");
  } catch (const std::exception& e) {
    throw Error(fmt::format("[experiment] mlflow = \"{}\": cannot write the MLflow run log of {} ({})", store.string(),
                            run_dir.string(), e.what()));
  }
}

MlflowLog::~MlflowLog() {
  // Destroyed before end(): an exception stopped training, a stop request's (Ctrl-C) or another's.
  if (!ended_) end(interrupt_signal() ? Status::killed : Status::failed);
}

fs::path MlflowLog::run_folder() const { return store_ / experiment_id_ / run_id_; }

template <typename Write>
void MlflowLog::guarded(const char* what, Write&& write) {
  if (broken_) return;
  try {
    write();
  } catch (const std::exception& e) {
    broken_ = true;
    if (warnings_)
      *warnings_ << fmt::format("warning: the MLflow log in {} stopped: cannot write {} ({}); training goes on\n",
                                run_folder().string(), what, e.what());
  }
}

void MlflowLog::write_run_meta(Status status, int64_t end_ms) {
  // MLflow's keys (file_store.py, _make_persisted_run_info_dict), in yaml.safe_dump's order.
  MetaYaml meta;
  meta.plain("artifact_uri", file_uri(run_folder() / "artifacts"));
  if (end_ms > 0) {
    meta.plain("end_time", end_ms);
  } else {
    meta.plain("end_time", YAML::Null);
  }
  write_file_atomic(run_folder() / "meta.yaml", meta.text("entry_point_name", "")
                                                    .text("experiment_id", experiment_id_)
                                                    .plain("lifecycle_stage", "active")
                                                    .text("run_id", run_id_)
                                                    .text("run_name", run_name_)
                                                    .text("run_uuid", run_id_)
                                                    .text("source_name", "")
                                                    .plain("source_type", 4)
                                                    .text("source_version", "")
                                                    .plain("start_time", start_ms_)
                                                    .plain("status", static_cast<int>(status))
                                                    .empty_list("tags")
                                                    .text("user_id", user_name())
                                                    .str());
}

void MlflowLog::log_metric(const std::string& name, double value, int64_t step) {
  append_metric(name, value, now_ms(), step);
}

void MlflowLog::append_metric(const std::string& name, double value, int64_t time, int64_t step) {
  if (!std::isfinite(value)) return;
  guarded("a metric", [&] {
    std::ofstream out(run_folder() / "metrics" / mlflow_key(name), std::ios::app);
    out << metric_line(value, time, step);
    if (!out.flush()) throw Error("the write failed");
  });
}

void MlflowLog::log_summary(const RunSummary& summary) {
  const auto step = static_cast<int64_t>(summary.history.size());
  for (const auto& split : summary.splits)
    for (const auto& [name, value] :
         {std::pair<const char*, double>{"loss", split.metrics.loss},
          {"accuracy", split.metrics.accuracy},
          {"auroc_micro", split.metrics.auroc_micro},
          {"auroc_macro", split.metrics.auroc_macro},
          {"f1_macro", split.metrics.f1_macro}})
      log_metric("final_" + split.name + "_" + name, value, step);
}

void MlflowLog::end(Status status) {
  guarded("the run's status", [&] { write_run_meta(status, status == Status::running ? 0 : now_ms()); });
  ended_ = status != Status::running;
}

void MlflowLog::on_train_begin(Trainer& trainer) {
  // Each epoch the trainer has, once: a resumed run's checkpoint may hold fewer epochs than
  // the files (killed after an epoch was logged but before its checkpoint) or more (killed
  // after the checkpoint). The lines of the epochs it holds keep their times.
  const std::vector<EpochRecord>& history = trainer.history();
  guarded("the metrics", [&] {
    const auto names = epoch_metrics(EpochRecord{});
    for (size_t i = 0; i < names.size(); ++i) {
      const fs::path file = run_folder() / "metrics" / names[i].first;
      std::map<int64_t, std::string> logged;  // step -> its line
      if (fs::exists(file)) {
        std::istringstream lines(read_file(file));
        for (std::string line; std::getline(lines, line);) {
          std::istringstream fields(line);
          int64_t time = 0, step = 0;
          double value = 0;
          if (fields >> time >> value >> step) logged.emplace(step, line + "\n");
        }
      }
      std::string text;
      for (const EpochRecord& record : history) {
        const double value = epoch_metrics(record)[i].second;
        if (auto it = logged.find(record.epoch); it != logged.end()) text += it->second;
        else if (std::isfinite(value)) text += metric_line(value, now_ms(), record.epoch);
      }
      // MLflow refuses an empty metric file.
      if (text.empty()) fs::remove(file);
      else write_file_atomic(file, text);
    }
  });
}

void MlflowLog::on_epoch_end(Trainer&, const EpochRecord& record) {
  const int64_t time = now_ms();
  for (const auto& [name, value] : epoch_metrics(record)) append_metric(name, value, time, record.epoch);
}

std::shared_ptr<MlflowLog> open_mlflow_log(const ExperimentSettings& experiment, const fs::path& run_dir,
                                           const Config& config, std::ostream* warnings) {
  if (experiment.mlflow.empty()) return nullptr;
  try {
    return std::make_shared<MlflowLog>(experiment.mlflow, run_dir, experiment.name, config, warnings);
  } catch (const Error& e) {
    // The log is a copy of what the run folder holds: training goes on without it.
    if (warnings) *warnings << "warning: " << e.what() << "; training goes on without the MLflow log\n";
    return nullptr;
  }
}

}  // namespace bachlab::host
