#include <bachlab/sdk/tuning.h>

#include <algorithm>
#include <cmath>

namespace bachlab::sdk {

double as_double(const Scalar& s) {
  if (const auto* f = std::get_if<double>(&s)) return *f;
  if (const auto* i = std::get_if<int64_t>(&s)) return static_cast<double>(*i);
  return 0;
}

int64_t int_count(const Dimension& d) { return (d.int_max - d.int_min) / d.int_step + 1; }

Scalar sample_value(const Dimension& d, Rng& rng) {
  switch (d.type) {
    case Dimension::Type::Int:
      return d.int_min + static_cast<int64_t>(rng.below(static_cast<uint64_t>(int_count(d)))) * d.int_step;
    case Dimension::Type::Float: {
      const double u = rng.uniform();
      if (d.log) return std::exp(std::log(d.float_min) + u * (std::log(d.float_max) - std::log(d.float_min)));
      return d.float_min + u * (d.float_max - d.float_min);
    }
    case Dimension::Type::Choice:
      return d.choices[rng.below(d.choices.size())];
    case Dimension::Type::Bool:
      return rng.below(2) == 1;
    case Dimension::Type::Fixed:
      break;
  }
  return d.fixed;
}

Assignment sample_assignment(const SearchSpace& space, Rng& rng) {
  Assignment out;
  for (const auto& d : space.dimensions)
    if (SearchSpace::active(d, out)) out[d.name] = sample_value(d, rng);
  return out;
}

void make_consistent(const SearchSpace& space, Assignment& a, Rng& rng) {
  Assignment out;
  for (const auto& d : space.dimensions) {
    if (!SearchSpace::active(d, out)) continue;
    auto it = a.find(d.name);
    out[d.name] = it != a.end() ? it->second : sample_value(d, rng);
  }
  a = std::move(out);
}

std::string assignment_key(const Assignment& a) {
  std::string key;
  for (const auto& [name, value] : a) {
    key += name;
    key += static_cast<char>('0' + value.index());
    if (const auto* s = std::get_if<std::string>(&value)) {
      key += *s;
    } else if (const auto* d = std::get_if<double>(&value)) {
      key.append(reinterpret_cast<const char*>(d), sizeof(double));
    } else if (const auto* i = std::get_if<int64_t>(&value)) {
      key.append(reinterpret_cast<const char*>(i), sizeof(int64_t));
    } else {
      key += std::get<bool>(value) ? '1' : '0';
    }
    key += '\0';
  }
  return key;
}

std::set<std::string> seen_keys(const std::vector<TrialRecord>& history) {
  std::set<std::string> keys;
  for (const auto& t : history) keys.insert(assignment_key(t.params));
  return keys;
}

double space_size(const SearchSpace& space, double cap) {
  // Conditional dimensions make the exact count a sum over branches; the product over
  // all dimensions is an upper bound, and only "is the space exhausted" depends on it.
  double size = 1;
  for (const auto& d : space.dimensions) {
    switch (d.type) {
      case Dimension::Type::Int: size *= static_cast<double>(int_count(d)); break;
      case Dimension::Type::Float: return cap;
      case Dimension::Type::Choice: size *= static_cast<double>(d.choices.size()); break;
      case Dimension::Type::Bool: size *= 2; break;
      case Dimension::Type::Fixed: break;
    }
    if (size >= cap) return cap;
  }
  return size;
}

std::vector<Assignment> neighbours(const SearchSpace& space, const Assignment& a, double scale, Rng& rng) {
  std::vector<Assignment> out;
  for (const auto& d : space.dimensions) {
    auto it = a.find(d.name);
    if (it == a.end()) continue;
    auto with = [&](Scalar value) {
      Assignment b = a;
      b[d.name] = std::move(value);
      make_consistent(space, b, rng);
      out.push_back(std::move(b));
    };
    switch (d.type) {
      case Dimension::Type::Int: {
        const auto* p = std::get_if<int64_t>(&it->second);
        if (!p) break;
        const int64_t v = *p;
        if (v - d.int_step >= d.int_min) with(v - d.int_step);
        if (v + d.int_step <= d.int_max) with(v + d.int_step);
        break;
      }
      case Dimension::Type::Float: {
        const double v = as_double(it->second);
        double moved;
        if (d.log) {
          const double lo = std::log(d.float_min), hi = std::log(d.float_max);
          moved = std::exp(std::clamp(std::log(v) + scale * (hi - lo) * rng.normal(), lo, hi));
        } else {
          moved = std::clamp(v + scale * (d.float_max - d.float_min) * rng.normal(), d.float_min, d.float_max);
        }
        with(std::clamp(moved, d.float_min, d.float_max));
        break;
      }
      case Dimension::Type::Choice:
        for (const auto& c : d.choices)
          if (!(c == it->second)) with(c);
        break;
      case Dimension::Type::Bool:
        if (const auto* b = std::get_if<bool>(&it->second)) with(!*b);
        break;
      case Dimension::Type::Fixed:
        break;
    }
  }
  return out;
}

bool SearchSpace::active(const Dimension& dimension, const Assignment& assignment) {
  if (dimension.parent.empty()) return true;
  auto it = assignment.find(dimension.parent);
  if (it == assignment.end()) return false;
  for (const auto& v : dimension.parent_values)
    if (v == it->second) return true;
  return false;
}

namespace {

size_t columns(const Dimension& d) {
  switch (d.type) {
    case Dimension::Type::Int:
    case Dimension::Type::Float:
    case Dimension::Type::Bool: return 1;
    case Dimension::Type::Choice: return d.choices.size();
    case Dimension::Type::Fixed: return 0;
  }
  return 0;
}
double unit_float(const Dimension& d, double v) {
  if (!(d.float_max > d.float_min)) return 0;
  if (d.log) return (std::log(v) - std::log(d.float_min)) / (std::log(d.float_max) - std::log(d.float_min));
  return (v - d.float_min) / (d.float_max - d.float_min);
}
}  // namespace

Encoder::Encoder(const SearchSpace& space) : space_(&space) {
  for (const auto& d : space.dimensions) {
    offsets_.push_back(width_);
    width_ += columns(d);
  }
}
std::vector<double> Encoder::encode(const Assignment& a) const {
  std::vector<double> x(width_, 0.0);
  for (size_t k = 0; k < space_->dimensions.size(); ++k) {
    const Dimension& d = space_->dimensions[k];
    auto it = a.find(d.name);
    if (it == a.end()) continue;
    const size_t o = offsets_[k];
    switch (d.type) {
      case Dimension::Type::Int: {
        const auto* v = std::get_if<int64_t>(&it->second);
        if (v && d.int_max > d.int_min)
          x[o] = static_cast<double>(*v - d.int_min) / static_cast<double>(d.int_max - d.int_min);
        break;
      }
      case Dimension::Type::Float:
        x[o] = unit_float(d, as_double(it->second));
        break;
      case Dimension::Type::Choice:
        for (size_t c = 0; c < d.choices.size(); ++c)
          if (d.choices[c] == it->second) x[o + c] = 1.0;
        break;
      case Dimension::Type::Bool: {
        const auto* b = std::get_if<bool>(&it->second);
        x[o] = b && *b ? 1.0 : 0.0;
        break;
      }
      case Dimension::Type::Fixed:
        break;
    }
  }
  return x;
}
}  // namespace bachlab::sdk
