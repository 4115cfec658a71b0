#include "host/train/data_parallel.h"

#include "host/util/process.h"

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/model.h>

#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>

extern char** environ;

namespace bachlab::host {

namespace {

using Milliseconds = std::chrono::milliseconds;

// "HOST:PORT" or "[IPv6]:PORT" as (host, port), the host resolved now: a name no one can
// resolve is one clear error at once, not a rendezvous retried until the timeout.
std::pair<std::string, uint16_t> parse_master(const std::string& master) {
  const auto colon = master.rfind(':');
  std::string host = colon == std::string::npos ? "" : master.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  if (colon != std::string::npos) {
    const std::string digits = master.substr(colon + 1);
    if (!digits.empty() && digits.size() <= 5 && std::all_of(digits.begin(), digits.end(), ::isdigit))
      port = std::stoi(digits);
  }
  if (host.empty() || port < 1 || port > 65535 || (host.find(':') != std::string::npos && master.front() != '['))
    throw Error("--master \"" + master +
                "\": expected HOST:PORT with a port in 1..65535, e.g. 10.0.0.5:29500 (an IPv6 address in brackets: "
                "[fd00::5]:29500)");
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0)
    throw Error("--master \"" + master + "\": cannot resolve \"" + host + "\" (" + gai_strerror(rc) +
                "); name rank 0's machine by an address or a name this machine resolves");
  freeaddrinfo(found);
  return {host, static_cast<uint16_t>(port)};
}

// Binds a TCP socket to (address, port; port 0: any free one) and closes it again: the port
// it got, or 0 with errno saying why not.
uint16_t try_bind(uint32_t address, uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in where{};
  where.sin_family = AF_INET;
  where.sin_addr.s_addr = htonl(address);
  where.sin_port = htons(port);
  socklen_t length = sizeof where;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&where), sizeof where) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&where), &length) == 0;
  const int error = errno;
  close(fd);
  errno = error;
  return ok ? ntohs(where.sin_port) : 0;
}

// Node 0 serves the rendezvous at --master's port (LibTorch's server listens on every
// interface, so the address may be one the machine is reached by through NAT): the port must
// be free, or every other rank would wait the whole timeout for a server that never starts.
void check_master_port_free(const std::string& master) {
  const uint16_t port = parse_master(master).second;
  if (try_bind(INADDR_ANY, port) == 0 && errno == EADDRINUSE)
    throw Error("--master \"" + master + "\": port " + std::to_string(port) +
                " is in use on this machine, where node 0 (--node-rank 0) serves the meeting point; pick a free port");
}

// LibTorch's reason without the C++ backtrace it appends to its own errors.
std::string reason(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// A TCP port of 127.0.0.1 that nothing listens on now, for a one-machine group.
uint16_t free_local_port() {
  if (const uint16_t port = try_bind(INADDR_LOOPBACK, 0)) return port;
  throw Error(std::string("cannot find a free port on 127.0.0.1: ") + std::strerror(errno));
}

// Packs tensors into one contiguous float buffer, and back: one collective for all.
torch::Tensor pack(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> flat;
  flat.reserve(tensors.size());
  for (const auto& t : tensors) flat.push_back(t.detach().reshape({-1}).to(torch::kCPU, torch::kFloat32));
  return flat.empty() ? torch::zeros({0}) : torch::cat(flat);
}

void unpack(const torch::Tensor& buffer, const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& t : tensors) {
    const int64_t n = t.numel();
    t.copy_(buffer.slice(0, offset, offset + n).view(t.sizes()));
    offset += n;
  }
}

}  // namespace

DataParallel::DataParallel(int rank, int world, const std::string& master, Milliseconds timeout)
    : rank_(rank), world_(world), timeout_(timeout) {
  if (world < 1 || rank < 0 || rank >= world)
    throw Error(fmt::format("data-parallel rank {} of {}: the rank must be in 0..{}", rank, world, world - 1));
  const auto [host, port] = parse_master(master);
  const double seconds = std::chrono::duration<double>(timeout).count();
  try {
    c10d::TCPStoreOptions options;
    options.port = port;
    options.isServer = rank == 0;
    options.numWorkers = static_cast<size_t>(world);
    options.waitWorkers = true;
    options.timeout = timeout;
    store_ = c10::make_intrusive<c10d::TCPStore>(host, options);
  } catch (const std::exception& e) {
    throw Error(fmt::format("data-parallel rank {} of {}: the ranks did not meet at {} within {:g} s ({}); check "
                            "that rank 0 runs there and that every machine can reach that address and port",
                            rank, world, master, seconds, reason(e)));
  }
  try {
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // On one machine every rank talks over loopback; across machines each binds to the
    // address its host name resolves to (GLOO_SOCKET_IFNAME picks an interface instead).
    const std::string interface = env_or_empty("GLOO_SOCKET_IFNAME");
    if (!interface.empty())
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
    else if (host == "127.0.0.1" || host == "localhost")
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    options->threads = 1;
    group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, rank, world, options);
  } catch (const std::exception& e) {
    throw Error(fmt::format("data-parallel rank {} of {}: cannot connect to the other ranks ({})", rank, world,
                            reason(e)));
  }
}

DataParallel::~DataParallel() = default;

std::shared_ptr<DataParallel> DataParallel::from_environment() {
  const std::string world_text = env_or_empty("BACHLAB_WORLD_SIZE");
  if (world_text.empty() || world_text == "1") return nullptr;
  auto number = [](const char* name) {
    const std::string text = env_or_empty(name);
    try {
      size_t used = 0;
      const double value = std::stod(text, &used);
      if (used == text.size()) return value;
    } catch (const std::exception&) {
    }
    throw Error(std::string("environment variable ") + name + " = \"" + text + "\": expected a number (it is set " +
                "by `bachlab run --nproc`)");
  };
  const int world = static_cast<int>(number("BACHLAB_WORLD_SIZE"));
  const int rank = static_cast<int>(number("BACHLAB_RANK"));
  const double timeout_s = env_or_empty("BACHLAB_TIMEOUT_S").empty() ? 300.0 : number("BACHLAB_TIMEOUT_S");
  return std::make_shared<DataParallel>(rank, world, env_or_empty("BACHLAB_MASTER"),
                                        Milliseconds(static_cast<int64_t>(timeout_s * 1000)));
}

std::pair<int64_t, int64_t> shard_rows(int64_t rows, int rank, int world) {
  const int64_t base = rows / world, extra = rows % world;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

void DataParallel::finish(const char* what, const std::function<void()>& run) {
  const auto start = std::chrono::steady_clock::now();
  try {
    run();
    ++collectives_;
    collective_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(fmt::format("data-parallel rank {} of {}: {} failed ({}). Another rank stopped (it failed, was "
                            "killed, or its machine cannot be reached) or took longer than the timeout of {:g} s "
                            "(--timeout); every rank stops",
                            rank_, world_, what, e.what(), std::chrono::duration<double>(timeout_).count()));
  }
}

void DataParallel::in_place(const std::vector<torch::Tensor>& tensors, const char* what,
                            const std::function<void(std::vector<torch::Tensor>&)>& collective) {
  torch::Tensor buffer = pack(tensors);
  finish(what, [&] {
    std::vector<torch::Tensor> io{buffer};
    collective(io);
  });
  unpack(buffer, tensors);
}

void DataParallel::sum(const std::vector<torch::Tensor>& tensors) {
  in_place(tensors, "summing the gradients", [&](std::vector<torch::Tensor>& io) { group_->allreduce(io)->wait(timeout_); });
}

torch::Tensor DataParallel::gather_rows(const torch::Tensor& local, int64_t rows) {
  // Every rank's share is known from the batch's size (shard_rows), so one collective
  // does: each rank's rows padded to the largest share, gathered, trimmed.
  const int64_t most = shard_rows(rows, 0, world_).second;
  TORCH_CHECK(local.size(0) == shard(rows).second - shard(rows).first, "gather_rows: rank ", rank_, " holds ",
              local.size(0), " rows, its share of ", rows, " is ", shard(rows).second - shard(rows).first);
  std::vector<int64_t> padded_shape = local.sizes().vec();
  padded_shape[0] = most;
  torch::Tensor padded = torch::zeros(padded_shape, local.options().device(torch::kCPU));
  padded.slice(0, 0, local.size(0)).copy_(local);
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < world_; ++r) outputs[0].push_back(torch::empty_like(padded));
  finish("gathering the predictions", [&] {
    std::vector<torch::Tensor> input{padded};
    auto work = group_->allgather(outputs, input);
    work->wait(timeout_);
  });
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < world_; ++r) {
    const auto [begin, end] = shard_rows(rows, r, world_);
    parts.push_back(outputs[0][r].slice(0, 0, end - begin));
  }
  return torch::cat(parts);
}

void DataParallel::broadcast(const std::vector<torch::Tensor>& tensors) {
  in_place(tensors, "copying rank 0's weights",
           [&](std::vector<torch::Tensor>& io) { group_->broadcast(io)->wait(timeout_); });
}

void DataParallelStep::start(sdk::Network& model) {
  // Every rank starts from rank 0's weights (they are built from the same seed; this makes
  // it so whatever a model's initialisation does).
  std::vector<torch::Tensor> state;
  for (auto& p : model.parameters()) state.push_back(p);
  for (auto& b : model.buffers()) state.push_back(b);
  parallel_->broadcast(state);
}

torch::Tensor DataParallelStep::objective(const torch::Tensor& loss, const torch::Tensor& logits,
                                          const torch::Tensor& extra, int64_t local_rows, int64_t batch_rows) const {
  // This rank's share of the batch's mean loss (and of the regularization term), so that
  // the gradients summed over the ranks are those of the whole batch. A rank whose share
  // is empty (a last batch smaller than the group) adds zeros.
  torch::Tensor share = local_rows == 0 ? logits.sum() * 0.0
                                        : loss * (static_cast<double>(local_rows) / static_cast<double>(batch_rows));
  if (extra.defined()) share = share + extra / static_cast<double>(parallel_->world());
  return share;
}

double DataParallelStep::reduce(sdk::Network& model, const torch::Tensor& objective) {
  // The gradients and the loss, summed over the ranks in one collective: every rank then
  // sees the batch's loss and takes the same step.
  std::vector<torch::Tensor> summed;
  for (auto& p : model.parameters())
    if (p.requires_grad() && p.grad().defined()) summed.push_back(p.mutable_grad());
  torch::Tensor total = objective.detach().reshape({1}).to(torch::kCPU, torch::kFloat32).clone();
  summed.push_back(total);
  parallel_->sum(summed);
  return total.item<double>();
}

std::string DataParallel::share(const std::string& key, const std::string& value) {
  const std::string stored = "bachlab/" + std::to_string(shares_++) + "/" + key;
  std::string out;
  finish(("sharing " + key).c_str(), [&] {
    if (leader()) store_->set(stored, std::vector<uint8_t>(value.begin(), value.end()));
    const std::vector<uint8_t> bytes = store_->get(stored);
    out.assign(bytes.begin(), bytes.end());
  });
  return out;
}

int launch_ranks(const std::vector<std::string>& args, const LaunchSettings& settings) {
  if (settings.nproc < 1 || settings.nnodes < 1 || settings.node_rank < 0 || settings.node_rank >= settings.nnodes)
    throw Error(fmt::format("--nproc {} --nnodes {} --node-rank {}: expected at least 1 process on at least 1 "
                            "machine and a node rank in 0..{}",
                            settings.nproc, settings.nnodes, settings.node_rank, settings.nnodes - 1));
  std::string master = settings.master;
  if (master.empty()) {
    if (settings.nnodes > 1)
      throw Error("--nnodes " + std::to_string(settings.nnodes) +
                  " needs --master HOST:PORT, the address of the machine with --node-rank 0");
    master = "127.0.0.1:" + std::to_string(free_local_port());
  }
  if (settings.node_rank == 0)
    check_master_port_free(master);
  else
    parse_master(master);
  const int world = settings.nproc * settings.nnodes;

  // Everything a child needs is built before fork(): after it, only exec.
  // The program's own file, so that process listings name the ranks as they name it.
  const std::filesystem::path program = program_file();
  std::vector<std::string> argv_text{program.string()};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> base_env;
  auto ours = [](const std::string& entry) {
    for (const char* name : {"BACHLAB_RANK=", "BACHLAB_WORLD_SIZE=", "BACHLAB_MASTER=", "BACHLAB_TIMEOUT_S="})
      if (entry.rfind(name, 0) == 0) return true;
    return false;
  };
  bool log_level_set = false;
  for (char** e = environ; *e; ++e) {
    if (!ours(*e)) base_env.emplace_back(*e);
    log_level_set = log_level_set || std::strncmp(*e, "GLOG_minloglevel=", 17) == 0 ||
                    std::strncmp(*e, "TORCH_CPP_LOG_LEVEL=", 20) == 0;
  }
  // LibTorch logs every retry of the rendezvous (a warning a second per rank); the ranks'
  // own errors say what failed, so LibTorch logs only what is fatal unless the user chose a level.
  if (!log_level_set) {
    base_env.emplace_back("GLOG_minloglevel=3");
    base_env.emplace_back("TORCH_CPP_LOG_LEVEL=FATAL");
  }
  const pid_t launcher = getpid();

  std::vector<pid_t> pids;
  auto stop_all = [&](int signal) {
    for (pid_t pid : pids)
      if (pid > 0) kill(pid, signal);
  };
  for (int local = 0; local < settings.nproc; ++local) {
    const int rank = settings.node_rank * settings.nproc + local;
    std::vector<std::string> env_text = base_env;
    env_text.push_back("BACHLAB_RANK=" + std::to_string(rank));
    env_text.push_back("BACHLAB_WORLD_SIZE=" + std::to_string(world));
    env_text.push_back("BACHLAB_MASTER=" + master);
    env_text.push_back(fmt::format("BACHLAB_TIMEOUT_S={:g}", settings.timeout_s));
    std::vector<char*> envp;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
      stop_all(SIGKILL);
      throw Error(std::string("cannot start rank ") + std::to_string(rank) + ": " + std::strerror(errno));
    }
    if (pid == 0) {
      // A rank dies with its launcher (killed, even by kill -9): none keeps training alone
      // and writing a run folder no one watches. The check after it covers a launcher that
      // died before the request was made.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != launcher) _exit(1);
      // Rank 0 prints the progress; the others' output would repeat it.
      if (rank != 0) {
        const int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, STDOUT_FILENO);
      }
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    pids.push_back(pid);
  }

  // Waits for every rank. The first failure stops the rest at once: on one machine no rank
  // waits for a collective timeout because a sibling died.
  int result = 0;
  auto rank_of = [&](pid_t pid) {
    return settings.node_rank * settings.nproc +
           static_cast<int>(std::find(pids.begin(), pids.end(), pid) - pids.begin());
  };
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  size_t running = pids.size();
  while (running > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno != EINTR) break;
    if (pid <= 0) {
      if (kill_at && std::chrono::steady_clock::now() > *kill_at) {
        stop_all(SIGKILL);
        kill_at.reset();
      }
      std::this_thread::sleep_for(Milliseconds(50));
      continue;
    }
    --running;
    const int rank = rank_of(pid);
    *std::find(pids.begin(), pids.end(), pid) = -1;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok || result != 0) continue;
    result = 1;
    if (WIFSIGNALED(status))
      std::fprintf(stderr, "rank %d of %d was killed by signal %d (%s); stopping the other ranks\n", rank, world,
                   WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
      std::fprintf(stderr, "rank %d of %d failed (exit status %d); stopping the other ranks\n", rank, world,
                   WEXITSTATUS(status));
    stop_all(SIGTERM);
    kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  }
  return result;
}

}  // namespace bachlab::host
