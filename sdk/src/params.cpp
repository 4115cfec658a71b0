#include <bachlab/sdk/param_table.h>

#include <algorithm>
#include <set>

namespace bachlab::sdk {

std::string Origin::prefix() const {
  if (file.empty()) return "";
  return line > 0 ? file + ":" + std::to_string(line) + ": " : file + ": ";
}

std::string ParamProblem::description() const { return table.empty() ? message : table + " " + message; }

std::string ParamProblem::text() const { return origin.prefix() + description(); }

bool KeySpec::operator==(const KeySpec& other) const {
  return type == other.type && fallback == other.fallback && rule == other.rule && reader == other.reader;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& candidate : candidates) {
    size_t d = edit_distance(word, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

namespace {

struct Entry {
  Value value;
  Origin origin;
};

template <typename T>
std::string range_text(const Range<T>& range) {
  if (range.min && range.max) return to_string(Scalar(*range.min)) + ".." + to_string(Scalar(*range.max));
  if (range.min) return ">= " + to_string(Scalar(*range.min));
  if (range.max) return "<= " + to_string(Scalar(*range.max));
  return "";
}

std::string choices_text(const std::vector<std::string>& choices) {
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + to_string(Scalar(c));
  return list;
}

template <typename T>
std::string list_text(const std::vector<T>& items) {
  std::vector<Scalar> list(items.begin(), items.end());
  return to_string(Value(std::move(list)));
}

template <typename T>
bool in_range(T value, const Range<T>& range) {
  return (!range.min || value >= *range.min) && (!range.max || value <= *range.max);
}

// A number of a list or a float key: an integer is accepted and converted.
std::optional<double> as_number(const Scalar& item) {
  if (const auto* d = std::get_if<double>(&item)) return *d;
  if (const auto* i = std::get_if<int64_t>(&item)) return static_cast<double>(*i);
  return std::nullopt;
}

}  // namespace

struct ParamTable::State {
  std::string table;
  Origin origin;
  std::map<std::string, Entry> entries;
  std::set<std::string> asked;
  std::map<std::string, KeySpec> specs;
  std::string reader;
  std::vector<ParamProblem> errors;

  // Marks `key` as read and keeps what was asked of it; the last ask of a key wins.
  void ask(const std::string& key, std::string type, std::string fallback, std::string rule) {
    asked.insert(key);
    specs[key] = KeySpec{std::move(type), std::move(fallback), std::move(rule), reader};
  }

  const Entry* find(const std::string& key) const {
    auto it = entries.find(key);
    return it == entries.end() ? nullptr : &it->second;
  }

  // `message` starts with the key, as it is printed.
  void add_error(const Origin& where, const std::string& key, const std::string& message) {
    errors.push_back(ParamProblem{table, key, where, message});
  }

  void wrong_type(const std::string& key, const Entry& entry, const std::string& expected) {
    add_error(entry.origin, key, key + " must be " + expected + " (was " + type_name(entry.value) + " " +
                                     to_string(entry.value) + ")");
  }

  template <typename T>
  void out_of_range(const std::string& key, const Entry& entry, const Range<T>& range) {
    const std::string rule = (range.min && range.max ? "in " : "") + range_text(range);
    add_error(entry.origin, key, key + " must be " + rule + " (was " + to_string(entry.value) + ")");
  }
};

ParamTable::ParamTable(std::string table, Origin origin) : state_(std::make_unique<State>()) {
  state_->table = std::move(table);
  state_->origin = std::move(origin);
}
ParamTable::ParamTable(const ParamTable& other) : Params(other), state_(std::make_unique<State>(*other.state_)) {}
ParamTable& ParamTable::operator=(const ParamTable& other) {
  if (this != &other) *state_ = *other.state_;
  return *this;
}
ParamTable::ParamTable(ParamTable&& other) noexcept = default;
ParamTable& ParamTable::operator=(ParamTable&& other) noexcept = default;
ParamTable::~ParamTable() = default;

void ParamTable::set(const std::string& key, Value value, Origin origin) {
  state_->entries[key] = Entry{std::move(value), std::move(origin)};
}

const Value& ParamTable::raw(const std::string& key) const { return state_->entries.at(key).value; }

bool ParamTable::has(const std::string& key) const { return state_->entries.count(key) != 0; }

std::vector<std::string> ParamTable::keys() const {
  std::vector<std::string> out;
  for (const auto& [key, entry] : state_->entries) out.push_back(key);
  return out;
}

Origin ParamTable::origin(const std::string& key) const {
  const Entry* entry = state_->find(key);
  return entry ? entry->origin : state_->origin;
}

std::optional<Value> ParamTable::get_value(const std::string& key) {
  state_->ask(key, "any", "", "");
  const Entry* entry = state_->find(key);
  if (!entry) return std::nullopt;
  return entry->value;
}

int64_t ParamTable::get_int(const std::string& key, int64_t fallback, Range<int64_t> range) {
  state_->ask(key, "integer", to_string(Scalar(fallback)), range_text(range));
  const Entry* entry = state_->find(key);
  if (!entry) return fallback;
  const auto* value = std::get_if<int64_t>(&entry->value);
  if (!value) return state_->wrong_type(key, *entry, "an integer"), fallback;
  if (!in_range(*value, range)) return state_->out_of_range(key, *entry, range), fallback;
  return *value;
}

double ParamTable::get_float(const std::string& key, double fallback, Range<double> range) {
  state_->ask(key, "number", to_string(Scalar(fallback)), range_text(range));
  const Entry* entry = state_->find(key);
  if (!entry) return fallback;
  std::optional<double> value;
  if (const auto* d = std::get_if<double>(&entry->value)) value = *d;
  if (const auto* i = std::get_if<int64_t>(&entry->value)) value = static_cast<double>(*i);
  if (!value) return state_->wrong_type(key, *entry, "a number"), fallback;
  if (!in_range(*value, range)) return state_->out_of_range(key, *entry, range), fallback;
  return *value;
}

bool ParamTable::get_bool(const std::string& key, bool fallback) {
  state_->ask(key, "bool", to_string(Scalar(fallback)), "");
  const Entry* entry = state_->find(key);
  if (!entry) return fallback;
  const auto* value = std::get_if<bool>(&entry->value);
  if (!value) return state_->wrong_type(key, *entry, "true or false"), fallback;
  return *value;
}

std::string ParamTable::get_string(const std::string& key, const std::string& fallback,
                                   const std::vector<std::string>& choices) {
  state_->ask(key, "string", to_string(Scalar(fallback)), choices_text(choices));
  const Entry* entry = state_->find(key);
  if (!entry) return fallback;
  const auto* value = std::get_if<std::string>(&entry->value);
  if (!value) return state_->wrong_type(key, *entry, "a string"), fallback;
  if (!choices.empty() && std::find(choices.begin(), choices.end(), *value) == choices.end()) {
    std::string hint = closest_match(*value, choices);
    state_->add_error(entry->origin, key,
                      key + " must be one of " + choices_text(choices) + " (was \"" + *value + "\")" +
                          (hint.empty() ? "" : "; did you mean \"" + hint + "\"?"));
    return fallback;
  }
  return *value;
}

std::vector<int64_t> ParamTable::get_int_list(const std::string& key, std::vector<int64_t> fallback,
                                              Range<int64_t> range) {
  state_->ask(key, "list of integers", list_text(fallback), range_text(range));
  const Entry* entry = state_->find(key);
  if (!entry) return fallback;
  const auto* list = std::get_if<std::vector<Scalar>>(&entry->value);
  if (!list) return state_->wrong_type(key, *entry, "a list of integers"), fallback;
  std::vector<int64_t> out;
  for (const auto& item : *list) {
    const auto* i = std::get_if<int64_t>(&item);
    if (!i) return state_->wrong_type(key, *entry, "a list of integers"), fallback;
    if (!in_range(*i, range)) return state_->out_of_range(key, *entry, range), fallback;
    out.push_back(*i);
  }
  return out;
}

std::vector<double> ParamTable::get_float_list(const std::string& key, std::vector<double> fallback,
                                               Range<double> range) {
  state_->ask(key, "list of numbers", list_text(fallback), range_text(range));
  const Entry* entry = state_->find(key);
  if (!entry) return fallback;
  const auto* list = std::get_if<std::vector<Scalar>>(&entry->value);
  if (!list) return state_->wrong_type(key, *entry, "a list of numbers"), fallback;
  std::vector<double> out;
  for (const auto& item : *list) {
    const std::optional<double> value = as_number(item);
    if (!value) return state_->wrong_type(key, *entry, "a list of numbers"), fallback;
    if (!in_range(*value, range)) return state_->out_of_range(key, *entry, range), fallback;
    out.push_back(*value);
  }
  return out;
}

std::vector<std::string> ParamTable::get_string_list(const std::string& key, std::vector<std::string> fallback) {
  state_->ask(key, "list of strings", list_text(fallback), "");
  const Entry* entry = state_->find(key);
  if (!entry) return fallback;
  const auto* list = std::get_if<std::vector<Scalar>>(&entry->value);
  if (!list) return state_->wrong_type(key, *entry, "a list of strings"), fallback;
  std::vector<std::string> out;
  for (const auto& item : *list) {
    const auto* text = std::get_if<std::string>(&item);
    if (!text) return state_->wrong_type(key, *entry, "a list of strings"), fallback;
    out.push_back(*text);
  }
  return out;
}

std::string ParamTable::get_path(const std::string& key, const std::string& fallback) {
  std::string value = get_string(key, fallback);
  state_->ask(key, "path", to_string(Scalar(fallback)), "");
  const Entry* entry = state_->find(key);
  if (!entry || value.empty() || value.front() == '/' || entry->origin.file.empty()) return value;
  auto slash = entry->origin.file.find_last_of('/');
  return slash == std::string::npos ? value : entry->origin.file.substr(0, slash + 1) + value;
}

void ParamTable::describe(const std::string& key, const std::string& type, const std::string& fallback,
                          const std::string& rule) {
  const auto it = state_->specs.find(key);
  const KeySpec old = it == state_->specs.end() ? KeySpec() : it->second;
  state_->ask(key, type.empty() ? old.type : type, fallback.empty() ? old.fallback : fallback,
              rule.empty() ? old.rule : rule);
}

void ParamTable::fail(const std::string& key, const std::string& message) {
  state_->asked.insert(key);
  const Entry* entry = state_->find(key);
  state_->add_error(entry ? entry->origin : state_->origin, key, key + " " + message);
}

const std::map<std::string, KeySpec>& ParamTable::specs() const { return state_->specs; }

void ParamTable::set_reader(std::string reader) { state_->reader = std::move(reader); }

std::vector<std::string> ParamTable::unknown_keys() const {
  std::vector<std::string> out;
  for (const auto& [key, entry] : state_->entries)
    if (!state_->asked.count(key)) out.push_back(key);
  return out;
}

std::vector<ParamProblem> ParamTable::structured_problems() const {
  std::vector<ParamProblem> out = state_->errors;
  std::vector<std::string> known(state_->asked.begin(), state_->asked.end());
  for (const auto& key : unknown_keys()) {
    std::string hint = closest_match(key, known);
    std::string message = "unknown key \"" + key + "\"";
    if (!hint.empty()) {
      message += "; did you mean \"" + hint + "\"?";
    } else if (!known.empty()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      message += "; known keys: " + list;
    } else {
      message += "; this plugin takes no settings";
    }
    out.push_back(ParamProblem{state_->table, key, state_->entries.at(key).origin, std::move(message), true});
  }
  return out;
}

std::vector<std::string> ParamTable::problems() const {
  std::vector<std::string> out;
  for (const auto& problem : structured_problems()) out.push_back(problem.text());
  return out;
}

void ParamTable::check() const {
  auto all = structured_problems();
  if (all.empty()) return;
  std::string message;
  for (const auto& problem : all) message += (message.empty() ? "" : "\n") + problem.text();
  throw ParamsError(message, std::move(all));
}

}  // namespace bachlab::sdk
