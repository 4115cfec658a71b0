#include "host/tune/tune_config.h"

#include "host/train/train_settings.h"

#include <bachlab/sdk/param_table.h>
#include <algorithm>
#include <functional>
#include <optional>
#include <set>

namespace bachlab::host {

namespace fs = std::filesystem;
using sdk::Dimension;
using sdk::ParamTable;
using sdk::Scalar;

namespace {

const std::vector<std::string> kTypes = {"int", "float", "choice", "bool", "fixed"};

std::string type_word(const Scalar& s) { return sdk::type_name(std::visit([](auto&& v) -> sdk::Value { return v; }, s)); }

// A list of scalars of one type, or a recorded problem.
bool read_scalar_list(ParamTable& table, const std::string& key, std::vector<Scalar>& out, const std::string& fix) {
  const std::optional<sdk::Value> value = table.get_value(key);
  table.describe(key, "list of one type", "required");
  if (!value) {
    table.fail(key, "is required; " + fix);
    return false;
  }
  const auto* list = std::get_if<std::vector<Scalar>>(&*value);
  if (!list) {
    table.fail(key, "must be a list (was " + std::string(sdk::type_name(*value)) + " " + sdk::to_string(*value) +
                        "); " + fix);
    return false;
  }
  if (list->empty()) {
    table.fail(key, "must not be empty (was []); " + fix);
    return false;
  }
  for (const auto& item : *list) {
    if (item.index() != list->front().index()) {
      table.fail(key, "must hold values of one type (found " + type_word(list->front()) + " " +
                          sdk::to_string(list->front()) + " and " + type_word(item) + " " + sdk::to_string(item) +
                          "); write every value as the same type");
      return false;
    }
  }
  for (size_t i = 0; i < list->size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if ((*list)[i] == (*list)[j]) {
        table.fail(key, "lists " + sdk::to_string((*list)[i]) + " twice; list each value once");
        return false;
      }
  out = *list;
  return true;
}

// The values a dimension can take, for checking a condition against its parent.
bool can_take(const Dimension& d, const Scalar& value) {
  switch (d.type) {
    case Dimension::Type::Int: {
      const auto* v = std::get_if<int64_t>(&value);
      return v && *v >= d.int_min && *v <= d.int_max && (*v - d.int_min) % d.int_step == 0;
    }
    case Dimension::Type::Float: {
      const auto* v = std::get_if<double>(&value);
      return v && *v >= d.float_min && *v <= d.float_max;
    }
    case Dimension::Type::Choice:
      return std::find(d.choices.begin(), d.choices.end(), value) != d.choices.end();
    case Dimension::Type::Bool:
      return std::holds_alternative<bool>(value);
    case Dimension::Type::Fixed:
      return value == d.fixed;
  }
  return false;
}

// min and max are integers for type = "int" and numbers for type = "float": one entry in
// the config reference, whichever type the config at hand used.
void describe_bounds(ParamTable& t) {
  for (const char* key : {"min", "max"}) t.describe(key, "integer or number", "required");
}

void read_dimension(Config& config, const std::string& table_name, const std::string& name, Dimension& d,
                    const std::vector<Dimension>& earlier) {
  ParamTable& t = config.table(table_name);
  d.name = name;
  const std::string type = t.get_string("type", "", kTypes);
  t.describe("type", "", "required");
  if (type == "int") {
    d.type = Dimension::Type::Int;
    const bool has_bounds = t.has("min") && t.has("max");
    d.int_min = t.get_int("min", 0);
    d.int_max = t.get_int("max", 0);
    d.int_step = t.get_int("step", 1, {1, {}});
    describe_bounds(t);
    if (!has_bounds) {
      t.fail(t.has("min") ? "max" : "min", "is required for type = \"int\"; give min and max, e.g. min = 32, max = 256");
    } else if (d.int_min > d.int_max) {
      t.fail("min", "must not exceed max (was min " + std::to_string(d.int_min) + ", max " +
                        std::to_string(d.int_max) + "); swap them");
    }
  } else if (type == "float") {
    d.type = Dimension::Type::Float;
    const bool has_bounds = t.has("min") && t.has("max");
    d.float_min = t.get_float("min", 0);
    d.float_max = t.get_float("max", 0);
    d.log = t.get_bool("log", false);
    describe_bounds(t);
    if (!has_bounds) {
      t.fail(t.has("min") ? "max" : "min",
             "is required for type = \"float\"; give min and max, e.g. min = 1e-4, max = 1e-2");
    } else if (!(d.float_min < d.float_max)) {
      t.fail("min", "must be below max (was min " + sdk::to_string(Scalar(d.float_min)) + ", max " +
                        sdk::to_string(Scalar(d.float_max)) + "); for a single value use type = \"fixed\"");
    } else if (d.log && !(d.float_min > 0)) {
      t.fail("min", "must be > 0 when log = true (was " + sdk::to_string(Scalar(d.float_min)) +
                        "); use a positive min or log = false");
    }
  } else if (type == "choice") {
    d.type = Dimension::Type::Choice;
    read_scalar_list(t, "values", d.choices, "list the values to choose from, e.g. values = [3, 5, 11]");
  } else if (type == "bool") {
    d.type = Dimension::Type::Bool;
  } else if (type == "fixed") {
    d.type = Dimension::Type::Fixed;
    if (!t.has("value")) {
      t.fail("value", "is required for type = \"fixed\"; e.g. value = 0.5");
    } else if (std::holds_alternative<std::vector<Scalar>>(t.raw("value"))) {
      t.fail("value", "must be a single value (was a list " + sdk::to_string(t.raw("value")) + ")");
    } else {
      // Any scalar: the value's own type is the type of the setting it fixes.
      d.fixed = std::visit(
          [](auto&& v) -> Scalar {
            if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::vector<Scalar>>) return Scalar();
            else return v;
          },
          *t.get_value("value"));
      t.describe("value", "string, number or bool", "required");
    }
  } else if (!t.has("type")) {
    t.fail("type", "is required: one of \"int\", \"float\", \"choice\", \"bool\", \"fixed\"");
  }

  if (!config.contains(table_name + ".when")) return;
  ParamTable& when = config.table(table_name + ".when");
  d.parent = when.get_string("parent", "");
  when.describe("parent", "", "required");
  read_scalar_list(when, "values", d.parent_values,
                   "list the parent's values that activate " + name + ", e.g. values = [\"sgd\"]");
  if (d.parent.empty()) {
    when.fail("parent", "is required: the dimension this one depends on, e.g. parent = \"optimizer.plugin\"");
    return;
  }
  auto parent = std::find_if(earlier.begin(), earlier.end(), [&](const Dimension& e) { return e.name == d.parent; });
  if (parent == earlier.end()) {
    std::vector<std::string> names;
    for (const auto& e : earlier) names.push_back(e.name);
    std::string hint = sdk::closest_match(d.parent, names);
    when.fail("parent", "names \"" + d.parent + "\", which is not a dimension listed before " + name +
                            (hint.empty() ? "; list the parent's [tune.space.*] table first"
                                          : "; did you mean \"" + hint + "\"?"));
    return;
  }
  for (const auto& v : d.parent_values)
    if (!can_take(*parent, v))
      when.fail("values", "holds " + sdk::to_string(v) + ", which " + d.parent +
                              " never takes; list only values of the parent's range");
}

}  // namespace

std::string reference_table(const std::string& table) {
  if (table.rfind("[ensemble.", 0) == 0) return "[ensemble.<name>]";
  const std::string prefix = "[tune.space.";
  if (table.rfind(prefix, 0) != 0) return table;
  const std::string when = ".when]";
  const bool condition = table.size() > when.size() && table.compare(table.size() - when.size(), when.size(), when) == 0;
  return condition ? "[tune.space.<table>.<key>.when]" : "[tune.space.<table>.<key>]";
}

std::pair<std::string, std::string> split_parameter(const std::string& name) {
  auto dot = name.rfind('.');
  if (dot == std::string::npos) return {"", name};
  return {name.substr(0, dot), name.substr(dot + 1)};
}

TuneSettings read_tune_settings(Config& config) {
  TuneSettings s;
  ParamTable& t = config.table("tune");
  ParamTable& experiment = config.table("experiment");
  if (experiment.has("seed"))
    if (const auto* seed = std::get_if<int64_t>(&experiment.raw("seed"))) s.seed = static_cast<uint64_t>(*seed);
  s.tuner = t.get_string("tuner", s.tuner);
  s.objective = t.get_string("objective", s.objective, monitorable_metrics());
  const std::string direction =
      t.get_string("direction", larger_is_better(s.objective) ? "max" : "min", {"max", "min"});
  t.describe("direction", "", "\"max\" (\"min\" for a loss objective)");
  s.maximize = direction == "max";
  s.max_trials = t.get_int("max_trials", s.max_trials, {1, 1000000});
  s.epochs = t.get_int("epochs", s.epochs, {1, 1000000});
  s.executions_per_trial = t.get_int("executions_per_trial", s.executions_per_trial, {1, 100});
  s.seed = static_cast<uint64_t>(t.get_int("seed", static_cast<int64_t>(s.seed), {0, {}}));
  t.describe("seed", "", "the [experiment] seed");
  s.max_consecutive_failures = t.get_int("max_consecutive_failures", s.max_consecutive_failures, {1, 1000000});
  s.top_k = t.get_int("top_k", s.top_k, {0, 1000});
  const fs::path config_dir = config.path().parent_path();
  const std::string folder = t.get_path("folder", "");
  t.describe("folder", "", "\"studies/\" + the config file's stem");
  s.folder = folder.empty() ? config_dir / "studies" / config.path().stem() : fs::path(folder);
  s.storage = t.get_string("storage", "");
  t.describe("storage", "", "\"sqlite:///\" + <folder>/study.db");
  s.heartbeat_s = t.get_float("heartbeat_s", s.heartbeat_s, {0.01, 3600});
  s.grace_s = t.get_float("grace_s", 3 * s.heartbeat_s, {0.01, 86400});
  t.describe("grace_s", "", "3 x heartbeat_s");
  if (s.grace_s <= s.heartbeat_s)
    t.fail("grace_s", "must exceed heartbeat_s (was grace_s " + sdk::to_string(Scalar(s.grace_s)) +
                          ", heartbeat_s " + sdk::to_string(Scalar(s.heartbeat_s)) +
                          "), or live trials would be taken from their workers; e.g. grace_s = 3 x heartbeat_s");
  const std::string artifacts = t.get_path("artifacts", "");
  t.describe("artifacts", "", "the study folder");
  s.artifacts = artifacts.empty() ? s.folder : fs::path(artifacts);
  return s;
}

sdk::ParamTable& tuner_params(Config& config) { return config.table("tune.options"); }

sdk::StudySettings study_settings(const TuneSettings& settings) {
  sdk::StudySettings out;
  out.max_trials = settings.max_trials;
  out.epochs = settings.epochs;
  out.seed = settings.seed;
  return out;
}

sdk::SearchSpace read_search_space(Config& config, DimensionOrigins* origins) {
  struct Found {
    std::string table, name;
    sdk::Origin origin;
  };
  std::vector<Found> found;
  // A table with `type` is a dimension; any other is a group of them (the experiment
  // table the names address), so [tune.space.model.filters] tunes [model] filters.
  std::function<void(const std::string&, const std::string&)> walk = [&](const std::string& table,
                                                                       const std::string& name) {
    for (const auto& child : config.subtables(table)) {
      const std::string child_table = table + "." + child;
      const std::string child_name = name.empty() ? child : name + "." + child;
      ParamTable& params = config.table(child_table);
      if (params.has("type")) {
        sdk::Origin origin;
        // The table's own line: Params knows only its entries', so the `type` line stands in.
        origin.file = config.path().string();
        found.push_back({child_table, child_name, origin});
      } else if (child != "when") {
        walk(child_table, child_name);
      }
    }
  };
  walk("tune.space", "");

  // Order by the line of each `type` key: the order the user wrote the dimensions in.
  std::vector<std::pair<int, size_t>> order;
  for (size_t i = 0; i < found.size(); ++i) {
    ParamTable& params = config.table(found[i].table);
    const int line = params.origin("type").line;
    found[i].origin.line = line;
    order.emplace_back(line, i);
  }
  std::stable_sort(order.begin(), order.end());

  sdk::SearchSpace space;
  for (const auto& [line, index] : order) {
    const Found& f = found[index];
    Dimension d;
    read_dimension(config, f.table, f.name, d, space.dimensions);
    auto [table, key] = split_parameter(f.name);
    if (table.empty() || table == "tune" || table.rfind("tune.", 0) == 0)
      config.table(f.table).fail("type", "belongs to a dimension named \"" + f.name +
                                             "\", which addresses no experiment table; name it "
                                             "[tune.space.<table>.<key>], e.g. [tune.space.model.filters]");
    if (origins) (*origins)[f.name] = f.origin;
    space.dimensions.push_back(std::move(d));
  }
  if (found.empty())
    config.table("tune").fail("space", "has no dimensions: add at least one [tune.space.<table>.<key>] table "
                                       "with a type, e.g. [tune.space.model.filters] type = \"int\"");
  return space;
}

}  // namespace bachlab::host
