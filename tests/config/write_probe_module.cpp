// write_probe_module OUT: writes a TorchScript module whose forward returns its input, the
// smallest feature extractor the torchscript model plugin accepts. The config reference
// (scripts/update_config_docs.sh) builds that plugin with it, so no exported network and
// no Python are needed.
#include "host/util/atomic_file.h"

#include <bachlab/sdk/error.h>

#include <torch/script.h>

#include <iostream>
#include <sstream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: write_probe_module OUT.ts\n";
    return 2;
  }
  try {
    torch::jit::Module module("Probe");
    module.define("def forward(self, x):\n    return x\n");
    std::ostringstream bytes;
    module.save(bytes);
    bachlab::host::write_file_atomic(argv[1], bytes.str());
  } catch (const std::exception& e) {
    std::cerr << "write_probe_module: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
