#pragma once
// Shared set-up of the transfer tests: the three plugins loaded as the host loads them,
// the torchvision fixtures written at build time, [model] tables as the config loader
// makes them, and state_dict files read and written the way export_torchvision.py does.
#include "host/plugins/registry.h"

#include <bachlab/sdk/param_table.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace transfer_test {

namespace fs = std::filesystem;
using bachlab::sdk::ModelSpec;
using bachlab::sdk::Origin;
using bachlab::sdk::ParamTable;
using bachlab::sdk::Value;
using Entries = std::vector<std::pair<std::string, Value>>;

inline const char* kConfig = "configs/transfer.toml";

#define REQUIRE_TORCHVISION()                                                                              \
  if (!TRANSFER_HAVE_TORCHVISION)                                                                          \
  GTEST_SKIP() << TRANSFER_PYTHON " has no torch/torchvision, so the torchvision fixtures were not built; " \
                  "install python3-torch python3-torchvision and re-run cmake"

inline std::string fixture(const std::string& name) { return std::string(TRANSFER_FIXTURE_DIR) + "/" + name; }

inline bachlab::host::PluginRegistry& registry() {
  static bachlab::host::PluginRegistry* registry = [] {
    auto* r = new bachlab::host::PluginRegistry();
    for (const char* name : {"resnet50", "vgg16", "torchscript"}) {
      auto file = fs::path(BACHLAB_TEST_PLUGIN_DIR) / (std::string("bachlab-model-") + name + ".so");
      if (!r->load(file)) ADD_FAILURE() << r->rejections().back().reason;
    }
    return r;
  }();
  return *registry;
}

// A [model] table as the config loader makes it: each key on its own line, from line 2.
inline ParamTable table(const Entries& entries) {
  ParamTable params("[model]", Origin{kConfig, 1});
  int line = 2;
  for (const auto& [key, value] : entries) params.set(key, value, Origin{kConfig, line++});
  return params;
}

inline std::shared_ptr<bachlab::sdk::Network> create(const std::string& model, int64_t size, int64_t classes,
                                                     const Entries& entries) {
  ParamTable params = table(entries);
  return registry().create_model(model, ModelSpec{3, size, size, classes}, params);
}

// The message create() throws, or "" if it does not throw.
inline std::string error_of(const std::string& model, int64_t size, int64_t classes, const Entries& entries) {
  try {
    create(model, size, classes, entries);
  } catch (const bachlab::Error& e) {
    return e.what();
  }
  return "";
}

// A state_dict file as torch.save(dict) writes it, in file order.
inline std::vector<std::pair<std::string, torch::Tensor>> read_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : torch::pickle_load(bytes).toGenericDict())
    out.emplace_back(item.key().toStringRef(), item.value().toTensor());
  return out;
}

inline std::map<std::string, torch::Tensor> read_map(const std::string& path) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [k, v] : read_dict(path)) out[k] = v;
  return out;
}

inline void write_dict(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& entries) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [k, v] : entries) dict.insert(k, v);
  std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A fresh folder per test under the system temp folder, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("bachlab-transfer-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Every backbone tensor (parameters and buffers outside the head), cloned.
inline std::map<std::string, torch::Tensor> backbone_state(torch::nn::Module& network) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : network.named_parameters())
    if (p.key().rfind("head.", 0) != 0) out[p.key()] = p.value().detach().clone();
  for (const auto& b : network.named_buffers())
    if (b.key().rfind("head.", 0) != 0) out[b.key()] = b.value().detach().clone();
  return out;
}

inline torch::Tensor random_images(int64_t n, int64_t size, uint64_t seed) {
  torch::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(0, 256, {n, 3, size, size}, generator, torch::kUInt8);
}

// Adds seeded noise: enough to make augmented copies differ from each other.
class Noise : public bachlab::sdk::Augmentation {
 public:
  torch::Tensor apply(const torch::Tensor& batch, torch::Generator& generator) const override {
    return batch + 0.05 * torch::randn(batch.sizes(), generator);
  }
};

}  // namespace transfer_test
