#include <bachlab/sdk/value.h>

#include <cstdio>
#include <cstdlib>
#include <type_traits>

namespace bachlab::sdk {

const char* type_name(const Value& v) {
  switch (v.index()) {
    case 0: return "bool";
    case 1: return "integer";
    case 2: return "float";
    case 3: return "string";
    default: return "list";
  }
}

std::string to_string(const Scalar& s) {
  struct {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const {
      // The shortest text that reads back as the same double, so 0.001 prints as 0.001;
      // plain decimals for everyday magnitudes, exponent form for tiny or huge ones.
      char buffer[64];
      const double magnitude = d < 0 ? -d : d;
      const bool plain = magnitude == 0 || (magnitude >= 1e-5 && magnitude < 1e15);
      for (int precision = 1; precision <= 20; ++precision) {
        std::snprintf(buffer, sizeof buffer, plain ? "%.*f" : "%.*g", precision, d);
        if (std::strtod(buffer, nullptr) == d) break;
      }
      std::string text = buffer;
      if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
      return text;
    }
    std::string operator()(const std::string& s) const { return "\"" + s + "\""; }
  } visitor;
  return std::visit(visitor, s);
}

std::string to_string(const Value& v) {
  if (const auto* list = std::get_if<std::vector<Scalar>>(&v)) {
    std::string text = "[";
    for (size_t i = 0; i < list->size(); ++i) text += (i ? ", " : "") + to_string((*list)[i]);
    return text + "]";
  }
  return std::visit(
      [](const auto& x) -> std::string {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::vector<Scalar>>) {
          return "";
        } else {
          return to_string(Scalar(x));
        }
      },
      v);
}

}  // namespace bachlab::sdk
