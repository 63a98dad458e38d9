#include "worker/worker.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "common/random.h"
#include "common/sha256.h"
#include "http/header_rules.h"
#include "http/server.h"
#include "worker/process.h"
#include "worker/telemetry.h"

namespace nimbus::worker {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using local = asio::local::stream_protocol;
using SteadyClock = std::chrono::steady_clock;
using boost::system::error_code;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kBufferBytes = 64 * 1024;
constexpr size_t kMaxLogLine = 16 * 1024;

namespace {

double msSince(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view runtimeName(Runtime r) { return r == Runtime::Edge ? "edge" : "nodejs"; }

// Peak resident memory of a process in MB (VmHWM), 0 when unknown.
double peakMemoryMb(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  }
  return 0;
}

// The error codes of spec 6.4 for the kind of function.
struct Codes {
  std::string_view failed, timeout;
};
Codes codesFor(Runtime r, bool middleware) {
  if (middleware) return {"MIDDLEWARE_INVOCATION_FAILED", "MIDDLEWARE_INVOCATION_TIMEOUT"};
  if (r == Runtime::Edge) return {"EDGE_FUNCTION_INVOCATION_FAILED", "EDGE_FUNCTION_INVOCATION_TIMEOUT"};
  return {"FUNCTION_INVOCATION_FAILED", "FUNCTION_INVOCATION_TIMEOUT"};
}

// A 64 KiB relay buffer from a per-thread free list: a warm request would otherwise
// allocate and free one each time.
class RelayBuffer {
 public:
  RelayBuffer() {
    auto& pool = freeList();
    if (pool.empty()) {
      buf_ = std::make_unique_for_overwrite<char[]>(kBufferBytes);
    } else {
      buf_ = std::move(pool.back());
      pool.pop_back();
    }
  }
  ~RelayBuffer() {
    auto& pool = freeList();
    if (pool.size() < 64) pool.push_back(std::move(buf_));
  }
  RelayBuffer(const RelayBuffer&) = delete;
  RelayBuffer& operator=(const RelayBuffer&) = delete;
  char* get() const { return buf_.get(); }

 private:
  static std::vector<std::unique_ptr<char[]>>& freeList() {
    thread_local std::vector<std::unique_ptr<char[]>> list;
    return list;
  }
  std::unique_ptr<char[]> buf_;
};

// Calls `fire` at `when` unless destroyed first. `fire` may reference locals of the
// frame that owns the Watchdog: it never runs after the destructor.
class Watchdog {
 public:
  Watchdog(const asio::any_io_executor& ex, SteadyClock::time_point when,
           std::function<void()> fire)
      : timer_(ex), state_(std::make_shared<State>()) {
    state_->fire = std::move(fire);
    timer_.expires_at(when);
    timer_.async_wait([s = state_](const error_code& ec) {
      if (ec || !s->active) return;
      s->fired = true;
      s->fire();
    });
  }
  ~Watchdog() {
    state_->active = false;
    timer_.cancel();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  bool fired() const { return state_->fired; }

 private:
  struct State {
    bool active = true;
    bool fired = false;
    std::function<void()> fire;
  };
  asio::steady_timer timer_;
  std::shared_ptr<State> state_;
};

}  // namespace

// ---- state

struct FunctionState;

struct Instance {
  enum class State { Starting, Stem, Specializing, Ready, Draining, Dead };
  std::string id;
  Runtime runtime = Runtime::Node;
  int heapMb = 0;
  std::string poolKey;
  pid_t pid = -1;
  std::string socketPath;
  State state = State::Starting;
  std::shared_ptr<FunctionState> fn;  // set once specialized (bg thread), then read-only
  // Whose log its output goes to: set when specialization starts, so output at import is
  // kept (worker thread only).
  std::shared_ptr<FunctionState> logFn;
  int inflight = 0;
  int capacity = 1;
  SteadyClock::time_point startedAt = SteadyClock::now();
  SteadyClock::time_point idleSince = SteadyClock::now();
  SteadyClock::time_point lastResponse = SteadyClock::now();
  double initMs = 0;
  bool coldUnclaimed = false;  // the first request served gets reported as the cold start
  bool killed = false;         // we stopped it; its exit is not a crash
  // Taking requests while its specialization runs: they carry x-nimbus-await-specialize
  // so the launcher holds them until the specialize request arrives.
  bool awaitingSpecialize = false;
  bool stopWhenIdle = false;   // failed to specialize: stop once its requests are answered
  double peakMb = 0;           // VmHWM, refreshed at most once a second
  SteadyClock::time_point peakReadAt;
  uint64_t invocations = 0;
  std::string exitReason;
  // Idle keep-alive connections, each owned by the io_context that made it.
  std::vector<std::pair<asio::execution_context*, std::unique_ptr<local::socket>>> idle;
  // Worker-thread only.
  std::unique_ptr<asio::posix::stream_descriptor> out, err, exitWatch;
};
using InstancePtr = std::shared_ptr<Instance>;

struct Waiter {
  explicit Waiter(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  InstancePtr granted;
  bool finished = false;
  bool cold = false;
  double initMs = 0;
  int failStatus = 0;
  std::string failCode;
  std::string failMessage;
};
using WaiterPtr = std::shared_ptr<Waiter>;

struct FunctionState {
  std::string id;  // "<deploymentId>/<key>" (+ " middleware")
  std::shared_ptr<const FunctionDef> def;
  bool middleware = false;
  int capacity = 1;
  int memoryMb = 0;      // effective (config or default)
  int maxDurationS = 0;  // effective
  std::vector<InstancePtr> instances;  // specialized, not dead
  int starting = 0;
  std::deque<WaiterPtr> waiters;
  std::string filesDir;  // materialized .func directory
  // metrics
  uint64_t invocations = 0, errors = 0, coldStarts = 0, timeouts = 0, crashes = 0,
           throttled = 0, initFailures = 0;
  std::map<int, uint64_t> byStatusClass;
  Histogram duration, init, queueWait;
};
using FunctionPtr = std::shared_ptr<FunctionState>;

// Where a response goes: the client, or a buffer (middleware).
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  virtual asio::awaitable<bool> begin(int status, const Headers* headers,
                                      std::optional<uint64_t> length) = 0;
  virtual asio::awaitable<bool> write(std::string_view data) = 0;
  virtual asio::awaitable<bool> end() = 0;
  // A complete small response in one go (one write to the client).
  virtual asio::awaitable<bool> whole(int status, const Headers* headers, std::string_view body) = 0;
};

class ClientSink final : public ResponseSink {
 public:
  explicit ClientSink(http::Exchange* ex) : ex_(ex) {}
  asio::awaitable<bool> begin(int status, const Headers* headers,
                              std::optional<uint64_t> length) override {
    ex_->beginResponse(status);
    for (const auto& [k, v] : *headers) ex_->addHeader(k, v);
    co_return co_await ex_->startBody(length);
  }
  asio::awaitable<bool> write(std::string_view data) override {
    co_return co_await ex_->writeBody(data);
  }
  asio::awaitable<bool> end() override { co_return co_await ex_->endBody(); }
  asio::awaitable<bool> whole(int status, const Headers* headers, std::string_view body) override {
    ex_->beginResponse(status);
    for (const auto& [k, v] : *headers) ex_->addHeader(k, v);
    co_await ex_->send(body);
    co_return true;
  }

 private:
  http::Exchange* ex_;
};

class BufferSink final : public ResponseSink {
 public:
  BufferSink(BufferedResponse* out, uint64_t limit) : out_(out), limit_(limit) {}
  asio::awaitable<bool> begin(int status, const Headers* headers,
                              std::optional<uint64_t>) override {
    out_->status = status;
    out_->headers = *headers;
    co_return true;
  }
  asio::awaitable<bool> write(std::string_view data) override {
    if (out_->body.size() + data.size() > limit_) {
      tooLarge = true;
      co_return false;
    }
    out_->body.append(data);
    co_return true;
  }
  asio::awaitable<bool> end() override { co_return true; }
  asio::awaitable<bool> whole(int status, const Headers* headers, std::string_view body) override {
    out_->status = status;
    out_->headers = *headers;
    if (body.size() > limit_) {
      tooLarge = true;
      co_return false;
    }
    out_->body.assign(body);
    co_return true;
  }
  bool tooLarge = false;

 private:
  BufferedResponse* out_;
  uint64_t limit_;
};

// One exchange with an instance.
struct Call {
  http::Exchange* ex = nullptr;
  const Invocation* inv = nullptr;
  FunctionPtr fn;
  InstancePtr inst;
  bool sendBody = true;
  ResponseSink* sink = nullptr;
  SteadyClock::time_point deadline;
  // results
  bool responseStarted = false;
  bool clientGone = false;
  int status = 0;          // status sent (or to send as an error)
  std::string errorCode;   // set when the platform answers an error
  std::string errorMessage;
  bool recycle = false;    // the instance must be stopped
  bool processExited = false;  // it ended by itself (a crash, not a recycle)
  bool awaitSpecialize = false;  // the instance was still specializing when it was picked
  uint64_t bytesOut = 0;
};

// ---- the worker
//
// Locking: one mutex (mu_) guards functions, instances, waiters and pools. It is taken
// only in plain member functions, never held across a co_await, and never held while
// starting a coroutine (see later()).

class WorkerImpl final : public Worker {
 public:
  WorkerImpl(WorkerOptions options, FunctionCatalog* catalog)
      : options_(std::move(options)),
        catalog_(catalog),
        log_(options_.logDir),
        bgWork_(asio::make_work_guard(bg_)),
        evictTimer_(bg_),
        flushTimer_(bg_) {}

  ~WorkerImpl() override { shutdown(); }

  Result<void> start() {
    std::error_code ec;
    std::filesystem::create_directories(options_.stateDir + "/functions", ec);
    socketDir_ = options_.stateDir + "/sockets";
    std::filesystem::create_directories(socketDir_, ec);
    if (ec) {
      return makeError(ErrorKind::Io, fmt::format("cannot create {}: {}", socketDir_,
                                                  ec.message()));
    }
    // sun_path holds 108 bytes; long data directories get their sockets elsewhere.
    if (socketDir_.size() + 32 > 107) {
      char tmpl[] = "/tmp/nimbus-sock-XXXXXX";
      if (!::mkdtemp(tmpl)) {
        return makeError(ErrorKind::Io, fmt::format("cannot create a socket directory: {}",
                                                    std::strerror(errno)));
      }
      socketDir_ = tmpl;
      ownSocketDir_ = true;
    }
    ::chmod(socketDir_.c_str(), 0700);
    for (auto r : {Runtime::Node, Runtime::Edge}) {
      std::string launcher = launcherPath(r);
      if (::access(launcher.c_str(), R_OK) != 0) {
        return makeError(ErrorKind::NotFound,
                         fmt::format("the {} launcher is missing at {}; pass --runtimes <dir> "
                                     "(the repository's runtimes/ directory)",
                                     runtimeName(r), launcher));
      }
    }
    nodePath_ = findProgram(options_.nodeBinary);
    if (::access(nodePath_.c_str(), X_OK) != 0) {
      return makeError(ErrorKind::NotFound,
                       fmt::format("Node.js ('{}') was not found; install the nodejs package or "
                                   "pass --node <path>",
                                   options_.nodeBinary));
    }
    thread_ = std::thread([this] { bg_.run(); });
    asio::post(bg_, [this] {
      if (options_.stemCells > 0) {
        wantPool(Runtime::Node, heapFor(Runtime::Node, options_.defaultMemoryMb));
        wantPool(Runtime::Edge, heapFor(Runtime::Edge, options_.edgeMemoryMb));
      }
      scheduleEvict();
      scheduleFlush();
    });
    return success();
  }

  void shutdown() override {
    if (stopped_.exchange(true)) return;
    std::vector<pid_t> pids;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, inst] : all_) {
        if (inst->pid > 0) pids.push_back(inst->pid);
        inst->killed = true;
      }
    }
    for (pid_t p : pids) ::kill(p, SIGKILL);
    bgWork_.reset();
    bg_.stop();
    if (thread_.joinable()) thread_.join();
    for (pid_t p : pids) {
      for (int i = 0; i < 100 && reapChild(p).empty(); ++i) ::usleep(1000);
    }
    {
      std::lock_guard lock(mu_);
      for (auto& [id, inst] : all_) {
        inst->idle.clear();
        inst->out.reset();
        inst->err.reset();
        inst->exitWatch.reset();
        ::unlink(inst->socketPath.c_str());
      }
      all_.clear();
      functions_.clear();
      pools_.clear();
    }
    log_.flush();
    if (ownSocketDir_) ::rmdir(socketDir_.c_str());
  }

  // ---- invocation

  asio::awaitable<void> invoke(http::Exchange* ex, const Invocation* inv) override {
    auto started = SteadyClock::now();
    auto def = catalog_->lookup(inv->deploymentId, inv->functionKey);
    if (!def) {
      spdlog::warn("request {}: function {}: {}", ex->requestId(), inv->functionKey,
                   def.error().message);
      co_await http::sendError(ex, 500, "FUNCTION_INVOCATION_FAILED", def.error().message);
      co_return;
    }
    Codes codes = codesFor((*def)->runtime, false);
    if (auto cl = ex->contentLength(); cl && *cl > options_.maxRequestBodyBytes) {
      std::string message = fmt::format(
          "the request body of {} bytes is over the function limit of {} bytes", *cl,
          options_.maxRequestBodyBytes);
      co_await http::sendError(ex, 413, "FUNCTION_PAYLOAD_TOO_LARGE", message);
      co_return;
    }
    FunctionPtr fn = functionFor(*def, false);
    ClientSink sink(ex);
    Call call;
    call.ex = ex;
    call.inv = inv;
    call.fn = fn;
    call.sink = &sink;
    co_await run(&call, codes, started);
    if (call.clientGone || call.errorCode.empty()) co_return;
    if (call.responseStarted) {
      ex->closeAfterResponse();
      co_return;
    }
    co_await http::sendError(ex, call.status, call.errorCode, call.errorMessage);
  }

  asio::awaitable<void> invokeMiddleware(http::Exchange* ex, const Invocation* inv,
                                         MiddlewareResult* out) override {
    auto started = SteadyClock::now();
    auto def = catalog_->lookup(inv->deploymentId, inv->functionKey);
    if (!def) {
      out->errorStatus = 500;
      out->errorCode = "MIDDLEWARE_INVOCATION_FAILED";
      out->errorMessage = def.error().message;
      co_return;
    }
    FunctionPtr fn = functionFor(*def, true);
    BufferSink sink(&out->response, options_.maxMiddlewareResponseBytes);
    Call call;
    call.ex = ex;
    call.inv = inv;
    call.fn = fn;
    call.sink = &sink;
    call.sendBody = false;
    co_await run(&call, codesFor((*def)->runtime, true), started);
    if (sink.tooLarge) {
      out->errorStatus = 500;
      out->errorCode = "MIDDLEWARE_INVOCATION_FAILED";
      out->errorMessage = fmt::format("the middleware response is over {} bytes",
                                      options_.maxMiddlewareResponseBytes);
      co_return;
    }
    if (!call.errorCode.empty()) {
      out->errorStatus = call.status;
      out->errorCode = call.errorCode;
      out->errorMessage = call.errorMessage;
      co_return;
    }
    out->ok = !call.clientGone;
  }

  // Acquire a slot, forward, release, record.
  asio::awaitable<void> run(Call* call, Codes codes, SteadyClock::time_point started) {
    FunctionState* fn = call->fn.get();
    std::shared_ptr<Waiter> w;
    auto executor = co_await asio::this_coro::executor;
    InstancePtr inst;
    bool cold = false;
    double initMs = 0;
    double peakMb = 0;
    inst = takeSlotOrQueue(call->fn, executor, &w, &cold, &initMs);
    if (w) {
      w->timer.expires_after(options_.queueTimeout);
      co_await w->timer.async_wait(kTuple);
      inst = collectWaiter(fn, w, call, &cold, &initMs);
    }
    double queueMs = msSince(started);
    if (inst) {
      call->inst = inst;
      call->deadline = SteadyClock::now() + std::chrono::seconds(fn->maxDurationS);
      co_await forward(call, codes);
      if (call->errorCode == "NO_RESPONSE_FROM_FUNCTION") co_await explainNoResponse(call);
      peakMb = instancePeakMb(inst.get());  // before a recycle ends the process
      if (cold) initMs = initMsOf(inst.get());  // known once the overlapped specialize ended
      release(call);
    }
    record(call, cold, initMs, queueMs, msSince(started), peakMb);
  }

  // A free slot of a ready instance (taken), or null with `*w` queued (and cold starts
  // begun for it).
  InstancePtr takeSlotOrQueue(const FunctionPtr& fn, const asio::any_io_executor& executor,
                              WaiterPtr* w, bool* cold, double* initMs) {
    std::lock_guard lock(mu_);
    InstancePtr inst = freeInstance(fn.get());
    if (inst) {
      ++inst->inflight;
      if (inst->coldUnclaimed) {
        inst->coldUnclaimed = false;
        *cold = true;
        *initMs = inst->initMs;
      }
      return inst;
    }
    *w = std::make_shared<Waiter>(executor);
    fn->waiters.push_back(*w);
    scaleUp(fn);
    return nullptr;
  }

  // After a waiter's wait: its granted instance, or null with the failure in `call`
  // (the start failed, or the deadline passed: 503).
  InstancePtr collectWaiter(FunctionState* fn, const WaiterPtr& w, Call* call, bool* cold,
                            double* initMs) {
    std::lock_guard lock(mu_);
    if (w->granted) {
      *cold = w->cold;
      *initMs = w->initMs;
      return w->granted;
    }
    if (w->finished) {
      call->status = w->failStatus;
      call->errorCode = w->failCode;
      call->errorMessage = w->failMessage;
      return nullptr;
    }
    std::erase(fn->waiters, w);
    ++fn->throttled;
    call->status = 503;
    call->errorCode = "FUNCTION_THROTTLED";
    call->errorMessage = fmt::format(
        "no instance of function '{}' became free within {} ms ({} running, {} starting, at "
        "most {}); retry later, or raise --queue-timeout (cold starts count against it) or "
        "--max-instances",
        fn->def->key, options_.queueTimeout.count(), fn->instances.size(), fn->starting,
        options_.maxInstances);
    return nullptr;
  }

  std::unique_ptr<local::socket> takeIdleConnection(Instance* inst, asio::execution_context* ctx) {
    std::lock_guard lock(mu_);
    for (auto it = inst->idle.begin(); it != inst->idle.end(); ++it) {
      if (it->first == ctx) {
        auto sock = std::move(it->second);
        inst->idle.erase(it);
        return sock;
      }
    }
    return nullptr;
  }

  void keepIdleConnection(Instance* inst, asio::execution_context* ctx,
                          std::unique_ptr<local::socket> sock) {
    std::lock_guard lock(mu_);
    if (inst->state == Instance::State::Ready || inst->state == Instance::State::Draining) {
      inst->idle.emplace_back(ctx, std::move(sock));
    }
  }

  double initMsOf(Instance* inst) {
    std::lock_guard lock(mu_);
    return inst->initMs;
  }

  bool awaitingSpecialize(Instance* inst) {
    std::lock_guard lock(mu_);
    return inst->awaitingSpecialize;
  }

  std::string exitReasonOf(Instance* inst) {
    std::lock_guard lock(mu_);
    return inst->exitReason;  // set once the worker thread reaped it
  }

  // Sends the request to the instance and relays its response to the sink.
  asio::awaitable<void> forward(Call* call, Codes codes) {
    auto executor = co_await asio::this_coro::executor;
    auto* ctx = &asio::query(executor, asio::execution::context);
    Instance* inst = call->inst.get();
    call->awaitSpecialize = awaitingSpecialize(inst);
    std::unique_ptr<local::socket> sock = takeIdleConnection(inst, ctx);
    if (!sock) {
      sock = std::make_unique<local::socket>(executor);
      local::endpoint ep(inst->socketPath);
      auto [cec] = co_await sock->async_connect(ep, kTuple);
      if (cec) {
        noResponse(call, fmt::format("cannot connect to its instance: {}", cec.message()));
        co_return;
      }
    }
    // maxDuration: closing the socket aborts whatever the exchange waits for.
    bool reusable = false;
    bool timedOut = false;
    {
      local::socket* raw = sock.get();
      Watchdog dog(executor, call->deadline, [raw] {
        error_code ignored;
        raw->close(ignored);
      });
      reusable = co_await exchange(call, codes, raw);
      timedOut = dog.fired();
    }
    if (timedOut) {
      reusable = false;
      call->recycle = true;
      call->status = 504;
      call->errorCode = std::string(codes.timeout);
      call->errorMessage = fmt::format(
          "function '{}' did not finish within its maxDuration of {} s; its instance was "
          "stopped. Raise maxDuration in .vc-config.json or make the handler finish sooner",
          call->fn->def->key, call->fn->maxDurationS);
      co_return;
    }
    if (reusable) keepIdleConnection(inst, ctx, std::move(sock));
  }

  // The instance's peak resident memory; /proc is read at most once a second per instance.
  double instancePeakMb(Instance* inst) {
    auto now = SteadyClock::now();
    {
      std::lock_guard lock(mu_);
      if (now - inst->peakReadAt < std::chrono::seconds(1)) return inst->peakMb;
    }
    double peak = peakMemoryMb(inst->pid);
    std::lock_guard lock(mu_);
    inst->peakReadAt = now;
    if (peak > 0) inst->peakMb = peak;
    return inst->peakMb;
  }

  void noResponse(Call* call, std::string why) {
    call->recycle = true;
    call->status = 502;
    call->errorCode = "NO_RESPONSE_FROM_FUNCTION";
    call->errorMessage = fmt::format(
        "function '{}' ({}) ended without a complete response: {}", call->fn->def->key,
        call->inst->id, why);
  }

  // After a broken exchange: waits briefly for the process to end (a crash closes the
  // socket a moment before the process is gone) and says how it ended.
  asio::awaitable<void> explainNoResponse(Call* call) {
    auto executor = co_await asio::this_coro::executor;
    std::string how;
    for (int i = 0; i < 40 && how.empty(); ++i) {
      how = exitReasonOf(call->inst.get());
      if (how.empty()) how = peekExit(call->inst->pid);
      if (!how.empty()) break;
      asio::steady_timer t(executor);
      t.expires_after(std::chrono::milliseconds(5));
      co_await t.async_wait(kTuple);
    }
    if (!how.empty()) call->processExited = true;
    call->errorMessage += fmt::format(
        "{}. The next request gets a fresh instance; `nimbus logs` has the function's output",
        how.empty() ? std::string() : "; the process " + how);
  }

  std::string requestHead(Call* call, bool* chunked, bool* hasBody) {
    http::Exchange* ex = call->ex;
    const Invocation* inv = call->inv;
    std::string h;
    h.reserve(1024);
    h += ex->method();
    h += ' ';
    h += inv->path.empty() ? std::string_view("/") : std::string_view(inv->path);
    if (!inv->query.empty()) {
      h += '?';
      h += inv->query;
    }
    h += " HTTP/1.1\r\nhost: ";
    h += http::hdr::cleanValue(inv->publicHost);
    h += "\r\n";
    std::vector<std::string> connectionTokens;
    for (const auto& [k, v] : inv->requestHeaders) {
      if (http::hdr::iequals(k, "connection")) http::hdr::addConnectionTokens(v, &connectionTokens);
    }
    static constexpr std::string_view kPlatform[] = {
        "host",          "content-length",          "expect",           "x-forwarded-for",
        "x-forwarded-host", "x-forwarded-proto",    "x-real-ip",        "x-vercel-forwarded-for",
        "x-vercel-deployment-url", "x-vercel-id",   "x-nimbus-id"};
    for (const auto& [k, v] : inv->requestHeaders) {
      std::string name = http::hdr::lower(k);
      if (!http::hdr::isToken(name) || http::hdr::isHopByHop(name) ||
          http::hdr::contains(connectionTokens, name)) {
        continue;
      }
      bool platform = false;
      for (auto p : kPlatform) platform = platform || p == name;
      if (platform) continue;
      h += name;
      h += ": ";
      h += http::hdr::cleanValue(v);
      h += "\r\n";
    }
    std::string ip = ex->remoteAddress();
    h += fmt::format(
        "x-forwarded-host: {0}\r\nx-forwarded-proto: http\r\nx-forwarded-for: {1}\r\n"
        "x-real-ip: {1}\r\nx-vercel-forwarded-for: {1}\r\nx-vercel-deployment-url: {2}\r\n"
        "x-vercel-id: {3}::{4}\r\nx-nimbus-id: {4}\r\n{5}",
        http::hdr::cleanValue(inv->publicHost), ip, http::hdr::cleanValue(call->fn->def->deploymentHost),
        options_.region, ex->requestId(),
        call->awaitSpecialize ? "x-nimbus-await-specialize: 1\r\n" : "");
    *chunked = false;
    *hasBody = false;
    if (!call->sendBody) {
      h += "content-length: 0\r\n";
    } else if (auto cl = ex->contentLength()) {
      h += fmt::format("content-length: {}\r\n", *cl);
      *hasBody = *cl > 0;
    } else if (ex->hasBody()) {
      h += "transfer-encoding: chunked\r\n";
      *hasBody = true;
      *chunked = true;
    }
    h += "\r\n";
    return h;
  }

  // One request/response on `sock`. Returns whether the connection may be reused.
  asio::awaitable<bool> exchange(Call* call, Codes codes, local::socket* sock) {
    http::Exchange* ex = call->ex;
    bool chunked = false;
    bool hasBody = false;
    std::string head = requestHead(call, &chunked, &hasBody);
    auto [hec, hn] = co_await asio::async_write(*sock, asio::buffer(head), kTuple);
    if (hec) {
      noResponse(call, fmt::format("sending the request failed: {}", hec.message()));
      co_return false;
    }
    RelayBuffer buf;
    bool bodySent = !hasBody;
    while (!bodySent) {
      auto got = co_await ex->readBodySome(buf.get(), kBufferBytes, options_.maxRequestBodyBytes);
      if (!got) {
        if (got.error().kind == ErrorKind::TooLarge) {
          call->status = 413;
          call->errorCode = "FUNCTION_PAYLOAD_TOO_LARGE";
          call->errorMessage = fmt::format("the request body is over the function limit of {} bytes",
                                           options_.maxRequestBodyBytes);
        } else {
          call->clientGone = true;
        }
        co_return false;
      }
      size_t n = *got;
      error_code wec;
      if (chunked) {
        char sizeLine[24];
        int len = n == 0 ? std::snprintf(sizeLine, sizeof sizeLine, "0\r\n\r\n")
                         : std::snprintf(sizeLine, sizeof sizeLine, "%zx\r\n", n);
        std::array<asio::const_buffer, 3> bufs{asio::buffer(sizeLine, static_cast<size_t>(len)),
                                               asio::buffer(buf.get(), n),
                                               asio::buffer("\r\n", n == 0 ? 0 : 2)};
        auto [e, w] = co_await asio::async_write(*sock, bufs, kTuple);
        wec = e;
      } else if (n > 0) {
        auto [e, w] = co_await asio::async_write(*sock, asio::buffer(buf.get(), n), kTuple);
        wec = e;
      }
      if (wec) break;  // the function may still answer (an early 4xx)
      if (n == 0) bodySent = true;
    }

    beast::flat_buffer inbuf;
    bhttp::response_parser<bhttp::buffer_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(boost::none);
    bool isHead = ex->method() == "HEAD";
    if (isHead) parser.skip(true);
    auto [rec, rn] = co_await bhttp::async_read_header(*sock, inbuf, parser, kTuple);
    if (rec) {
      if (rec == asio::error::operation_aborted || rec == asio::error::bad_descriptor) {
        co_return false;  // the deadline closed the socket; the caller answers
      }
      noResponse(call,
                 parser.got_some() ? fmt::format("malformed response: {}", rec.message())
                                   : std::string("the connection closed before a response"));
      co_return false;
    }
    auto& res = parser.get();
    if (res.find("x-nimbus-specialize-failed") != res.end()) {
      co_await initFailure(call, codes, sock, &inbuf, &parser, buf.get());
      co_return false;
    }
    http::hdr::HeaderViews origin;
    for (const auto& f : res) origin.emplace_back(f.name_string(), f.value());
    Headers headers = http::hdr::composeResponseHeaders(
        origin, call->inv->responseHeaders, call->inv->importantHeaders,
        call->inv->responseHeaderDeletes);
    bool hasCacheControl = false;
    for (const auto& kv : headers) hasCacheControl = hasCacheControl || kv.first == "cache-control";
    if (!hasCacheControl) headers.emplace_back("cache-control", "public, max-age=0, must-revalidate");
    int status = call->inv->status != 0 ? call->inv->status : res.result_int();
    std::optional<uint64_t> length;
    if (auto cl = parser.content_length(); cl && !parser.chunked()) length = *cl;
    call->status = status;
    call->responseStarted = true;
    if (length && *length <= kBufferBytes && !isHead) {
      // A small response is read whole and sent in one write.
      size_t have = 0;
      while (!parser.is_done()) {
        parser.get().body().data = buf.get() + have;
        parser.get().body().size = kBufferBytes - have;
        auto [ec, n] = co_await bhttp::async_read_some(*sock, inbuf, parser, kTuple);
        if (ec == bhttp::error::need_buffer) ec = {};
        have = kBufferBytes - parser.get().body().size;
        if (ec) {
          call->responseStarted = false;
          if (ec != asio::error::operation_aborted && ec != asio::error::bad_descriptor) {
            noResponse(call, fmt::format("the response broke off: {}", ec.message()));
          }
          co_return false;
        }
      }
      call->bytesOut = have;
      if (!co_await call->sink->whole(status, &headers, std::string_view(buf.get(), have))) {
        call->clientGone = true;
        co_return false;
      }
      co_return bodySent && parser.keep_alive() && inbuf.size() == 0;
    }
    if (!co_await call->sink->begin(status, &headers, length)) {
      call->clientGone = true;
      co_return false;
    }
    while (!parser.is_done()) {
      parser.get().body().data = buf.get();
      parser.get().body().size = kBufferBytes;
      auto [ec, n] = co_await bhttp::async_read_some(*sock, inbuf, parser, kTuple);
      if (ec == bhttp::error::need_buffer) ec = {};
      size_t got = kBufferBytes - parser.get().body().size;
      if (got > 0) {
        call->bytesOut += got;
        if (!co_await call->sink->write(std::string_view(buf.get(), got))) {
          call->clientGone = true;
          co_return false;
        }
      }
      if (ec) {
        if (ec != asio::error::operation_aborted && ec != asio::error::bad_descriptor) {
          noResponse(call, fmt::format("the response broke off: {}", ec.message()));
        }
        co_return false;
      }
    }
    if (!co_await call->sink->end()) {
      call->clientGone = true;
      co_return false;
    }
    co_return bodySent && parser.keep_alive() && inbuf.size() == 0;
  }

  // The launcher answered for a handler that failed to load: the platform's 500 with the
  // launcher's error (its JSON body, read up to 64 KiB).
  asio::awaitable<void> initFailure(Call* call, Codes codes, local::socket* sock,
                                    beast::flat_buffer* inbuf,
                                    bhttp::response_parser<bhttp::buffer_body>* parser,
                                    char* buf) {
    std::string body;
    while (!parser->is_done() && body.size() < 64 * 1024) {
      parser->get().body().data = buf;
      parser->get().body().size = kBufferBytes;
      auto [ec, n] = co_await bhttp::async_read_some(*sock, *inbuf, *parser, kTuple);
      if (ec == bhttp::error::need_buffer) ec = {};
      body.append(buf, kBufferBytes - parser->get().body().size);
      if (ec) break;
    }
    std::string why = body;
    error_code jec;
    auto v = json::parse(body, jec);
    if (!jec && v.is_object()) {
      if (auto* e = v.as_object().if_contains("error"); e && e->is_string()) {
        why = std::string(e->as_string());
      }
    }
    call->status = 500;
    call->errorCode = std::string(codes.failed);
    call->errorMessage = fmt::format("function '{}' failed to initialize: {}", call->fn->def->key,
                                     why.substr(0, 4000));
  }

  void release(Call* call) {
    Instance* inst = call->inst.get();
    bool kill = false;
    {
      std::lock_guard lock(mu_);
      --inst->inflight;
      ++inst->invocations;
      inst->lastResponse = SteadyClock::now();
      if (inst->inflight == 0) inst->idleSince = inst->lastResponse;
      if (call->recycle && inst->state != Instance::State::Dead) {
        kill = !call->processExited;  // a crashed process is reaped as a crash
        retire(call->fn.get(), inst);
      }
      if (inst->stopWhenIdle && inst->inflight == 0 && inst->state != Instance::State::Dead) {
        kill = true;
      }

      dispatch(call->fn.get());
      if (call->recycle) scaleUp(call->fn);
    }
    if (kill) killInstance(call->inst, "recycled after a failed invocation");
  }

  void record(Call* call, bool cold, double initMs, double queueMs, double totalMs,
              double peak) {
    FunctionState* fn = call->fn.get();
    int status = call->clientGone && call->status == 0 ? 499 : call->status;
    {
      std::lock_guard lock(mu_);
      ++fn->invocations;
      ++fn->byStatusClass[status / 100];
      if (status >= 500) ++fn->errors;
      if (call->errorCode.find("TIMEOUT") != std::string::npos) ++fn->timeouts;
      fn->duration.observe(totalMs / 1000.0);
      fn->queueWait.observe(queueMs / 1000.0);
    }
    // Built by hand: this runs on every request.
    std::string line = fmt::format(
        "{{\"ts\":{},\"type\":\"invocation\",\"requestId\":{},\"deployment\":{},"
        "\"function\":{},{}\"instance\":{},\"cold\":{},\"initMs\":{:.1f},\"queueMs\":{:.1f},"
        "\"durationMs\":{:.1f},\"status\":{},\"peakMemoryMb\":{:.1f},\"memoryMb\":{},{}"
        "\"method\":{},\"path\":{}",
        wallMs(), jsonString(call->ex->requestId()), jsonString(fn->def->deploymentId),
        jsonString(fn->def->key), fn->middleware ? "\"middleware\":true," : "",
        jsonString(call->inst ? std::string_view(call->inst->id) : std::string_view()), cold,
        initMs, queueMs, totalMs, status, peak, fn->memoryMb,
        call->clientGone ? "\"clientClosed\":true," : "", jsonString(call->ex->method()),
        jsonString(call->inv->path));
    if (!call->errorCode.empty()) {
      line += fmt::format(",\"error\":{},\"message\":{}", jsonString(call->errorCode),
                          jsonString(call->errorMessage));
    }
    line += '}';
    log_.append(fn->def->deploymentId, std::move(line));
  }

  // ---- scheduling  // ---- scheduling (all under mu_)

  FunctionPtr functionFor(const std::shared_ptr<const FunctionDef>& def, bool middleware) {
    std::string id = def->deploymentId + "/" + def->key + (middleware ? " middleware" : "");
    std::unique_lock lock(mu_);
    auto it = functions_.find(id);
    if (it != functions_.end() && it->second->def == def) return it->second;
    auto fn = std::make_shared<FunctionState>();
    fn->id = id;
    fn->def = def;
    fn->middleware = middleware;
    fn->memoryMb = def->runtime == Runtime::Edge ? options_.edgeMemoryMb
                   : def->memoryMb > 0           ? def->memoryMb
                                                 : options_.defaultMemoryMb;
    fn->maxDurationS = def->maxDurationS > 0 ? def->maxDurationS : options_.defaultMaxDurationS;
    fn->capacity = def->concurrency > 0 ? def->concurrency
                   : def->runtime == Runtime::Edge ? options_.edgeConcurrency
                                                   : options_.nodeConcurrency;
    if (it != functions_.end()) {
      it->second = fn;
    } else {
      functions_.emplace(id, fn);
    }
    lock.unlock();
    prepareDeployment(def->deploymentId);
    return fn;
  }

  InstancePtr freeInstance(FunctionState* fn) {
    for (auto& inst : fn->instances) {
      if (inst->state == Instance::State::Ready && inst->inflight < inst->capacity) return inst;
    }
    return nullptr;
  }

  void dispatch(FunctionState* fn) {
    while (!fn->waiters.empty()) {
      InstancePtr inst = freeInstance(fn);
      if (!inst) return;
      WaiterPtr w = fn->waiters.front();
      fn->waiters.pop_front();
      ++inst->inflight;
      w->granted = inst;
      w->finished = true;
      if (inst->coldUnclaimed) {
        inst->coldUnclaimed = false;
        w->cold = true;
        w->initMs = inst->initMs;
      }
      asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
    }
  }

  void failWaiters(FunctionState* fn, int status, std::string_view code, const std::string& message) {
    while (!fn->waiters.empty()) {
      WaiterPtr w = fn->waiters.front();
      fn->waiters.pop_front();
      w->finished = true;
      w->failStatus = status;
      w->failCode = std::string(code);
      w->failMessage = message;
      asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
    }
  }

  // Starts as many instances as the queue needs (each brings `capacity` slots), up to
  // maxInstances. A request never waits for a polling tick.
  void scaleUp(const FunctionPtr& fn) {
    if (stopped_) return;
    long need = static_cast<long>(fn->waiters.size()) - static_cast<long>(fn->starting) * fn->capacity;
    while (need > 0 && static_cast<int>(fn->instances.size()) + fn->starting < options_.maxInstances) {
      ++fn->starting;
      need -= fn->capacity;
      later([this, fn] { return startInstance(fn); });
    }
  }

  // Starts a worker-thread coroutine from a later turn of the worker's loop. co_spawn on
  // the worker thread would run it inline up to its first suspension, which must not
  // happen while the caller holds mu_.
  template <class MakeCoroutine>
  void later(MakeCoroutine make) {
    asio::post(bg_, [this, make = std::move(make)]() mutable {
      asio::co_spawn(bg_, make(), asio::detached);
    });
  }

  // Removes a specialized instance from its function (it takes no more requests).
  void retire(FunctionState* fn, Instance* inst) {
    if (inst->state != Instance::State::Dead) inst->state = Instance::State::Draining;
    std::erase_if(fn->instances, [inst](const InstancePtr& p) { return p.get() == inst; });
  }

  // ---- instances (worker thread)

  int heapFor(Runtime r, int memoryMb) const {
    (void)r;
    // V8's old space gets ~80% of the memory limit; the rest is code, buffers and native.
    return std::max(64, memoryMb * 4 / 5);
  }

  std::string launcherPath(Runtime r) const {
    return fmt::format("{}/{}/launcher.mjs", options_.runtimesDir,
                       r == Runtime::Edge ? "edge" : "node");
  }

  static std::string poolKeyOf(Runtime r, int heapMb) {
    return fmt::format("{}:{}", runtimeName(r), heapMb);
  }

  struct Pool {
    Runtime runtime = Runtime::Node;
    int heapMb = 0;
    std::deque<InstancePtr> ready;
    int starting = 0;
    uint64_t taken = 0, misses = 0, spawned = 0;
  };

  // Registers a stem-cell pool and fills it (worker thread).
  void wantPool(Runtime r, int heapMb) {
    std::string key = poolKeyOf(r, heapMb);
    {
      std::lock_guard lock(mu_);
      auto& p = pools_[key];
      p.runtime = r;
      p.heapMb = heapMb;
    }
    refill(key);
  }

  void refill(const std::string& key) {
    if (stopped_ || options_.stemCells <= 0) return;
    int toStart = 0;
    Runtime r;
    int heap;
    {
      std::lock_guard lock(mu_);
      auto& p = pools_[key];
      r = p.runtime;
      heap = p.heapMb;
      toStart = options_.stemCells - static_cast<int>(p.ready.size()) - p.starting;
      if (toStart > 0) p.starting += toStart;
    }
    for (int i = 0; i < toStart; ++i) {
      later([this, key, r, heap] { return startStemCell(key, r, heap); });
    }
  }

  asio::awaitable<void> startStemCell(std::string key, Runtime r, int heapMb) {
    auto inst = co_await spawnInstance(r, heapMb);
    addStemCell(key, inst);
  }

  void addStemCell(const std::string& key, const InstancePtr& inst) {
    std::lock_guard lock(mu_);
    auto& p = pools_[key];
    --p.starting;
    if (!inst) return;
    ++p.spawned;
    if (inst->state == Instance::State::Dead) return;
    inst->state = Instance::State::Stem;
    inst->poolKey = key;
    p.ready.push_back(inst);
    resumeDeferred();
  }

  // A direct spawn may start when fewer than maxConcurrentSpawns run; otherwise the
  // function's start is given back and retried when a stem cell or a spawn slot frees.
  bool admitSpawn(const FunctionPtr& fn) {
    std::lock_guard lock(mu_);
    if (spawning_ < kMaxConcurrentSpawns) {
      ++spawning_;
      return true;
    }
    --fn->starting;
    if (std::find(deferred_.begin(), deferred_.end(), fn) == deferred_.end()) deferred_.push_back(fn);
    return false;
  }

  void spawnDone() {
    std::lock_guard lock(mu_);
    --spawning_;
    resumeDeferred();
  }

  // Under mu_: functions whose starts waited get scaleUp again.
  void resumeDeferred() {
    std::deque<FunctionPtr> pending;
    pending.swap(deferred_);
    for (auto& fn : pending) scaleUp(fn);
  }

  void refillAfter(const std::string& key, std::chrono::milliseconds delay) {
    auto timer = std::make_shared<asio::steady_timer>(bg_, delay);
    timer->async_wait([this, timer, key](const error_code& ec) {
      if (!ec && !stopped_) refill(key);
    });
  }

  // Takes a stem cell for (runtime, heap) or returns null (a miss, counted).
  InstancePtr takeStemCell(Runtime r, int heapMb, bool* poolExists) {
    std::string key = poolKeyOf(r, heapMb);
    std::lock_guard lock(mu_);
    auto it = pools_.find(key);
    *poolExists = it != pools_.end();
    if (!*poolExists) return nullptr;
    auto& p = it->second;
    while (!p.ready.empty()) {
      InstancePtr inst = p.ready.front();
      p.ready.pop_front();
      if (inst->state != Instance::State::Stem) continue;
      inst->state = Instance::State::Specializing;
      ++p.taken;
      return inst;
    }
    ++p.misses;
    return nullptr;
  }

  // Spawns a launcher and waits for its ready line (worker thread). Null on failure
  // (logged).
  asio::awaitable<InstancePtr> spawnInstance(Runtime r, int heapMb) {
    auto inst = std::make_shared<Instance>();
    inst->id = "in_" + randomId(8);
    inst->runtime = r;
    inst->heapMb = heapMb;
    inst->socketPath = fmt::format("{}/{}.sock", socketDir_, inst->id);
    SpawnSpec spec;
    spec.argv = {nodePath_, fmt::format("--max-old-space-size={}", heapMb), launcherPath(r),
                 "--socket", inst->socketPath};
    spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp"};
    spec.cwd = "/";
    auto child = spawnChild(spec);
    if (!child) {
      spdlog::error("worker: {}", child.error().message);
      co_return nullptr;
    }
    inst->pid = child->pid;
    inst->out = std::make_unique<asio::posix::stream_descriptor>(bg_, child->stdoutFd);
    inst->err = std::make_unique<asio::posix::stream_descriptor>(bg_, child->stderrFd);
    if (child->pidfd >= 0) {
      inst->exitWatch = std::make_unique<asio::posix::stream_descriptor>(bg_, child->pidfd);
    }
    registerInstance(inst);
    asio::co_spawn(bg_, watchExit(inst), asio::detached);

    // The first stdout line is "ready <pid>".
    std::string pending;
    bool timedOut = false;
    error_code ec;
    size_t n = 0;
    {
      auto* out = inst->out.get();
      Watchdog dog(bg_.get_executor(), SteadyClock::now() + options_.spawnTimeout, [out] {
        error_code ignored;
        out->cancel(ignored);
      });
      auto [rec, rn] = co_await asio::async_read_until(*inst->out, asio::dynamic_buffer(pending),
                                                       '\n', kTuple);
      ec = rec;
      n = rn;
      timedOut = dog.fired();
    }
    if (ec || pending.rfind("ready ", 0) != 0) {
      spdlog::error("worker: {} launcher {} did not start: {}", runtimeName(r), inst->id,
                    timedOut ? fmt::format("no ready line within {} ms",
                                           options_.spawnTimeout.count())
                             : ec ? ec.message() : "unexpected output: " + pending.substr(0, 200));
      killInstance(inst, "failed to start");
      co_return nullptr;
    }
    std::string rest = pending.substr(n);
    asio::co_spawn(bg_, readLines(inst, inst->out.get(), "stdout", std::move(rest)), asio::detached);
    asio::co_spawn(bg_, readLines(inst, inst->err.get(), "stderr", std::string()), asio::detached);
    co_return inst;
  }

  void registerInstance(const InstancePtr& inst) {
    std::lock_guard lock(mu_);
    all_[inst->id] = inst;
  }

  asio::awaitable<void> watchExit(InstancePtr inst) {
    if (inst->exitWatch) {
      co_await inst->exitWatch->async_wait(asio::posix::stream_descriptor::wait_read, kTuple);
    }
    std::string reason;
    for (int i = 0; i < 50; ++i) {
      reason = reapChild(inst->pid);
      if (!reason.empty()) break;
      asio::steady_timer t(bg_);
      t.expires_after(std::chrono::milliseconds(10));
      co_await t.async_wait(kTuple);
    }
    onExit(inst, reason.empty() ? std::string("ended") : reason);
  }

  void onExit(const InstancePtr& inst, const std::string& reason) {
    FunctionPtr fn;
    bool crashed = false;
    std::string poolKey;
    {
      std::lock_guard lock(mu_);
      auto previous = inst->state;
      inst->state = Instance::State::Dead;
      inst->exitReason = reason;
      inst->idle.clear();
      all_.erase(inst->id);
      fn = inst->fn;
      if (fn) {
        crashed = !inst->killed &&
                  (previous == Instance::State::Ready || previous == Instance::State::Draining);
        if (crashed) ++fn->crashes;
        retire(fn.get(), inst.get());
        dispatch(fn.get());
        scaleUp(fn);
      } else if (previous == Instance::State::Stem) {
        poolKey = inst->poolKey;
        auto& p = pools_[poolKey];
        std::erase(p.ready, inst);
      }
    }
    ::unlink(inst->socketPath.c_str());
    inst->exitWatch.reset();
    if (fn) {
      instanceEvent(fn.get(), inst.get(), crashed ? "crashed" : "stopped",
                    fmt::format("instance {} {} (pid {}, {} invocations)", inst->id, reason,
                                inst->pid, inst->invocations));
      if (crashed) {
        spdlog::warn("worker: instance {} of {} {}", inst->id, fn->id, reason);
      }
    } else if (!inst->killed && !stopped_) {
      spdlog::warn("worker: stem cell {} {}", inst->id, reason);
    }
    if (!poolKey.empty()) refill(poolKey);
  }

  void killInstance(const InstancePtr& inst, std::string_view why) {
    {
      std::lock_guard lock(mu_);
      if (inst->killed) return;
      inst->killed = true;
    }
    spdlog::debug("worker: stopping {}: {}", inst->id, why);
    if (inst->pid > 0) ::kill(inst->pid, SIGKILL);
  }

  // Function stdout/stderr, line by line, tagged with the request id of the launcher's
  // "[<id>] " prefix.
  asio::awaitable<void> readLines(InstancePtr inst, asio::posix::stream_descriptor* d,
                                  std::string_view stream, std::string pending) {
    auto buf = std::make_unique_for_overwrite<char[]>(kBufferBytes);
    for (;;) {
      size_t start = 0;
      for (;;) {
        size_t nl = pending.find('\n', start);
        if (nl == std::string::npos) {
          if (pending.size() - start > kMaxLogLine) nl = start + kMaxLogLine;
          else break;
        }
        emitLine(inst.get(), stream, std::string_view(pending).substr(start, nl - start));
        start = nl < pending.size() && pending[nl] == '\n' ? nl + 1 : nl;
      }
      pending.erase(0, start);
      auto [ec, n] = co_await d->async_read_some(asio::buffer(buf.get(), kBufferBytes), kTuple);
      if (ec) break;
      pending.append(buf.get(), n);
    }
    if (!pending.empty()) emitLine(inst.get(), stream, pending);
  }

  void emitLine(Instance* inst, std::string_view stream, std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    FunctionState* fn = inst->logFn.get();
    if (!fn) {
      spdlog::warn("worker: {} {}: {}", inst->id, stream, line);
      return;
    }
    // The launcher prefixes lines with "[<x-vercel-id>] ", and the worker always sends
    // x-vercel-id as "<region>::<request id>"; other bracketed text is the function's own.
    std::string requestId;
    if (line.size() > 2 && line.front() == '[') {
      auto close = line.find("] ");
      auto colons = line.substr(0, close).find("::");
      if (close != std::string_view::npos && close < 200 && colons != std::string_view::npos) {
        requestId = std::string(line.substr(colons + 2, close - colons - 2));
        line.remove_prefix(close + 2);
      }
    }
    json::object o;
    o["ts"] = wallMs();
    o["type"] = stream;
    o["deployment"] = fn->def->deploymentId;
    o["function"] = fn->def->key;
    o["instance"] = inst->id;
    if (!requestId.empty()) o["requestId"] = requestId;
    o["message"] = json::string(line.data(), line.size());
    log_.append(fn->def->deploymentId, json::serialize(o));
  }

  void instanceEvent(FunctionState* fn, Instance* inst, std::string_view event,
                     const std::string& message) {
    json::object o;
    o["ts"] = wallMs();
    o["type"] = "instance";
    o["event"] = event;
    o["deployment"] = fn->def->deploymentId;
    o["function"] = fn->def->key;
    o["instance"] = inst->id;
    o["message"] = message;
    log_.append(fn->def->deploymentId, json::serialize(o));
  }

  // A cold start: take a stem cell (or spawn), materialize the files, specialize, then
  // hand the new slots to waiting requests (worker thread).
  asio::awaitable<void> startInstance(FunctionPtr fn) {
    auto t0 = SteadyClock::now();
    const FunctionDef& def = *fn->def;
    int heap = heapFor(def.runtime, fn->memoryMb);
    bool poolExists = false;
    InstancePtr inst = takeStemCell(def.runtime, heap, &poolExists);
    if (inst) {
      // The replacement boots a little later, so it does not compete for the CPU with
      // this specialization and the first request.
      refillAfter(poolKeyOf(def.runtime, heap), std::chrono::milliseconds(100));
    } else {
      if (!poolExists && options_.stemCells > 0) {
        // A memory size not seen before: keep a pool for it from now on.
        wantPool(def.runtime, heap);
        countMiss(poolKeyOf(def.runtime, heap));
      }
      // Booting a runtime costs ~150 ms of CPU: a burst must not start one per missing
      // instance at once. Beyond the limit the start waits for a stem cell or a slot.
      if (!admitSpawn(fn)) co_return;
      inst = co_await spawnInstance(def.runtime, heap);
      spawnDone();
      if (inst) setState(inst.get(), Instance::State::Specializing);
    }
    std::string error;
    std::string dir;
    double filesMs = 0;
    if (!inst) {
      error = "the runtime process could not be started (the server log has details)";
    } else {
      inst->logFn = fn;
      auto filesStart = SteadyClock::now();
      auto d = materialize(fn.get());
      filesMs = msSince(filesStart);
      if (d) dir = std::move(*d); else error = d.error().message;
    }
    bool opened = openInstance(fn, inst, &error);
    double initMs = 0;
    bool stopNow = !opened;
    if (opened) {
      auto r = co_await specialize(inst, fn.get(), dir);
      if (r) initMs = *r;
      stopNow = finishSpecialize(fn, inst, r ? nullptr : &r.error(), initMs, t0, &error);
    }
    if (!error.empty()) noteInitFailure(fn, error);
    if (!error.empty()) {
      spdlog::warn("worker: cold start of {} failed: {}", fn->id, error);
      if (inst) {
        instanceEvent(fn.get(), inst.get(), "init-failed", error);
        if (stopNow) killInstance(inst, "initialization failed");
      }
    } else {
      instanceEvent(fn.get(), inst.get(), "started",
                    fmt::format("instance {} ready in {:.1f} ms (files {:.1f} ms, init {:.1f} ms)",
                                inst->id, msSince(t0), filesMs, initMs));
    }
  }

  void countMiss(const std::string& key) {
    std::lock_guard lock(mu_);
    ++pools_[key].misses;
  }

  void setState(Instance* inst, Instance::State state) {
    std::lock_guard lock(mu_);
    inst->state = state;
  }

  // Joins a specializing instance to its function (its slots count for scaleUp from now
  // on). False with `*error` set when it cannot.
  bool openInstance(const FunctionPtr& fn, const InstancePtr& inst, std::string* error) {
    std::lock_guard lock(mu_);
    --fn->starting;
    if (!error->empty()) return false;
    if (inst->state != Instance::State::Specializing || stopped_) {
      *error = "the instance ended before it was specialized";
      return false;
    }
    inst->fn = fn;
    inst->capacity = fn->capacity;
    fn->instances.push_back(inst);
    // Requests go to it while it specializes, saving a round trip through this thread on
    // every cold start: the launcher holds them until the handler is loaded, or answers
    // them marked x-nimbus-specialize-failed.
    inst->state = Instance::State::Ready;
    inst->awaitingSpecialize = true;
    inst->coldUnclaimed = true;
    inst->idleSince = SteadyClock::now();
    dispatch(fn.get());
    return true;
  }

  // After the specialize call: in service, or retired with `*error`. Returns whether to
  // stop the instance now (when it failed and no request is on it; otherwise the last
  // one to finish stops it).
  bool finishSpecialize(const FunctionPtr& fn, const InstancePtr& inst, const Error* failure,
                        double initMs, SteadyClock::time_point t0, std::string* error) {
    std::lock_guard lock(mu_);
    inst->awaitingSpecialize = false;
    if (!failure && inst->state == Instance::State::Ready) {
      inst->initMs = initMs;
      ++fn->coldStarts;
      fn->init.observe(msSince(t0) / 1000.0);
      scaleUp(fn);  // the queue may still need more than what is starting
      return false;
    }
    *error = failure ? failure->message : std::string("the instance ended while it was specialized");
    retire(fn.get(), inst.get());
    // A launcher that answered the failure answers held requests with it too; one that
    // did not answer will not answer them either.
    inst->stopWhenIdle = true;
    return inst->inflight == 0 || !failure || failure->kind != ErrorKind::Invalid;
  }

  // Waiting requests fail with the error when no other start is under way (another
  // attempt would likely fail the same way; the next request tries again).
  void noteInitFailure(const FunctionPtr& fn, const std::string& error) {
    std::lock_guard lock(mu_);
    ++fn->initFailures;
    if (fn->starting == 0) {
      failWaiters(fn.get(), 500, codesFor(fn->def->runtime, fn->middleware).failed,
                  fmt::format("function '{}' failed to initialize: {}", fn->def->key, error));
    }
  }

  // Writes the function's files under stateDir (once per deployment and function) and
  // returns the real .func directory.
  Result<std::string> materialize(FunctionState* fn) {
    if (!fn->filesDir.empty()) return fn->filesDir;
    auto dir = materializeFiles(*fn->def);
    if (dir) fn->filesDir = *dir;
    return dir;
  }

  // The first time a deployment is invoked, the files of all its functions are written in
  // the background, so their cold starts find them in place (worker thread).
  void prepareDeployment(const std::string& deploymentId) {
    {
      std::lock_guard lock(mu_);
      if (!prepared_.insert(deploymentId).second) return;
    }
    later([this, deploymentId] { return prepareFiles(deploymentId); });
  }

  asio::awaitable<void> prepareFiles(std::string deploymentId) {
    for (const auto& key : catalog_->functionKeys(deploymentId)) {
      if (stopped_) co_return;
      auto def = catalog_->lookup(deploymentId, key);
      if (def) (void)materializeFiles(**def);  // a failure shows at its cold start
      // One function per turn: spawns, log pipes and cold starts go in between.
      co_await asio::post(bg_, asio::use_awaitable);
    }
  }

  Result<std::string> materializeFiles(const FunctionDef& def) {
    std::string root = fmt::format("{}/functions/{}/{}", options_.stateDir, def.deploymentId,
                                   sha256Hex(def.key).substr(0, 16));
    std::string target = root + "/" + def.dir;
    std::error_code ec;
    if (std::filesystem::exists(root + "/.complete", ec)) return target;
    std::string tmp = root + ".tmp-" + randomId(6);
    std::filesystem::create_directories(tmp, ec);
    if (ec) {
      return makeError(ErrorKind::Io, fmt::format("cannot create {}: {}", tmp, ec.message()));
    }
    for (const auto& f : def.files) {
      std::string path = tmp + "/" + f.path;
      std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
      if (!f.symlinkTarget.empty()) {
        if (::symlink(f.symlinkTarget.c_str(), path.c_str()) != 0) {
          return makeError(ErrorKind::Io, fmt::format("cannot link {}: {}", path,
                                                      std::strerror(errno)));
        }
        continue;
      }
      auto blob = catalog_->blobPath(f.hash);
      bool linked = false;
      if (blob && (f.mode & 0111) == 0) linked = ::link(blob->c_str(), path.c_str()) == 0;
      if (!linked) {
        auto bytes = catalog_->readBlob(f.hash);
        if (!bytes) return bytes.error().context("materializing " + f.path);
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                        (f.mode & 0111) ? 0555 : 0444);
        if (fd < 0) {
          return makeError(ErrorKind::Io, fmt::format("cannot write {}: {}", path,
                                                      std::strerror(errno)));
        }
        bool ok = ::write(fd, bytes->data(), bytes->size()) == static_cast<ssize_t>(bytes->size());
        ::close(fd);
        if (!ok) return makeError(ErrorKind::Io, fmt::format("cannot write {}", path));
      }
    }
    std::ofstream(tmp + "/.complete").put('\n');
    if (::rename(tmp.c_str(), root.c_str()) != 0) {
      std::filesystem::remove_all(tmp, ec);
      if (!std::filesystem::exists(root + "/.complete", ec)) {
        return makeError(ErrorKind::Io, fmt::format("cannot place function files at {}", root));
      }
    }
    return target;
  }

  // POST /__nimbus/specialize; returns the launcher's initMs.
  asio::awaitable<Result<double>> specialize(InstancePtr inst, FunctionState* fn,
                                             std::string dir) {
    std::string body = specializeBody(fn, dir);
    local::socket sock(bg_);
    local::endpoint ep(inst->socketPath);
    auto [cec] = co_await sock.async_connect(ep, kTuple);
    if (cec) {
      co_return makeError(ErrorKind::Io, fmt::format("cannot reach the launcher: {}", cec.message()));
    }
    std::string head = fmt::format(
        "POST /__nimbus/specialize HTTP/1.1\r\nhost: instance\r\ncontent-type: "
        "application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.size());
    head += body;
    beast::flat_buffer buf;
    bhttp::response<bhttp::string_body> res;
    error_code rec;
    bool timedOut = false;
    {
      Watchdog dog(bg_.get_executor(), SteadyClock::now() + options_.specializeTimeout, [&sock] {
        error_code ignored;
        sock.close(ignored);
      });
      auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(head), kTuple);
      rec = wec;
      if (!rec) {
        auto [ec, n] = co_await bhttp::async_read(sock, buf, res, kTuple);
        rec = ec;
      }
      timedOut = dog.fired();
    }
    if (timedOut) {
      co_return makeError(ErrorKind::Io,
                          fmt::format("loading the handler took longer than {} ms (top-level "
                                      "await that never settles?)",
                                      options_.specializeTimeout.count()));
    }
    if (rec) co_return makeError(ErrorKind::Io, fmt::format("the launcher failed: {}", rec.message()));
    error_code jec;
    auto parsed = json::parse(res.body(), jec);
    if (res.result_int() != 200 || jec || !parsed.is_object()) {
      std::string why = res.body();
      if (!jec && parsed.is_object()) {
        if (auto* e = parsed.as_object().if_contains("error"); e && e->is_string()) {
          why = std::string(e->as_string());
        }
      }
      co_return makeError(ErrorKind::Invalid, why.substr(0, 4000));
    }
    double initMs = 0;
    if (auto* v = parsed.as_object().if_contains("initMs"); v && v->is_number()) {
      initMs = v->to_number<double>();
    }
    co_return initMs;
  }

  std::string specializeBody(FunctionState* fn, const std::string& dir) {
    const FunctionDef& def = *fn->def;
    json::object o;
    o["dir"] = dir;
    error_code ec;
    auto config = json::parse(def.configJson, ec);
    o["config"] = ec ? json::value(json::object()) : config;
    json::object env;
    for (const auto& [k, v] : def.env) env[k] = v;
    o["env"] = std::move(env);
    o["functionName"] = def.key;
    o["deploymentId"] = def.deploymentId;
    o["region"] = options_.region;
    if (fn->middleware) o["middleware"] = true;
    return json::serialize(o);
  }

  // ---- keep-alive and flushing (worker thread)

  std::chrono::milliseconds evictInterval() const {
    auto quarter = options_.keepAlive / 4;
    return std::clamp(quarter, std::chrono::milliseconds(20), std::chrono::milliseconds(1000));
  }

  void scheduleEvict() {
    evictTimer_.expires_after(evictInterval());
    evictTimer_.async_wait([this](const error_code& ec) {
      if (ec || stopped_) return;
      evictIdle();
      scheduleEvict();
    });
  }

  void scheduleFlush() {
    flushTimer_.expires_after(std::chrono::milliseconds(200));
    flushTimer_.async_wait([this](const error_code& ec) {
      if (ec) return;
      log_.flush();
      if (!stopped_) scheduleFlush();
    });
  }

  void evictIdle() {
    std::vector<InstancePtr> candidates;
    auto now = SteadyClock::now();
    {
      std::lock_guard lock(mu_);
      for (auto& [id, fn] : functions_) {
        for (auto& inst : fn->instances) {
          if (inst->state == Instance::State::Ready && inst->inflight == 0 &&
              now - inst->idleSince >= options_.keepAlive) {
            inst->state = Instance::State::Draining;
            candidates.push_back(inst);
          }
        }
      }
    }
    for (auto& inst : candidates) asio::co_spawn(bg_, drain(inst), asio::detached);
  }

  // An idle instance leaves once its waitUntil work is done (or over its cap).
  asio::awaitable<void> drain(InstancePtr inst) {
    int pending = co_await pendingWaitUntil(inst);
    if (finishDrain(inst, pending)) killInstance(inst, "idle past the keep-alive time");
  }

  // True when the draining instance is to stop; otherwise it is back in service.
  bool finishDrain(const InstancePtr& inst, int pendingWaitUntil) {
    std::lock_guard lock(mu_);
    FunctionState* fn = inst->fn.get();
    if (inst->state != Instance::State::Draining) return false;
    if (inst->inflight > 0 || (pendingWaitUntil > 0 && SteadyClock::now() - inst->lastResponse <
                                                           options_.waitUntilTimeout)) {
      inst->state = Instance::State::Ready;
      dispatch(fn);
      return false;
    }
    retire(fn, inst.get());
    return true;
  }

  asio::awaitable<int> pendingWaitUntil(InstancePtr inst) {
    local::socket sock(bg_);
    local::endpoint ep(inst->socketPath);
    auto [cec] = co_await sock.async_connect(ep, kTuple);
    if (cec) co_return 0;
    std::string req = "GET /__nimbus/health HTTP/1.1\r\nhost: instance\r\nconnection: close\r\n\r\n";
    auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(req), kTuple);
    if (wec) co_return 0;
    beast::flat_buffer buf;
    bhttp::response<bhttp::string_body> res;
    auto [rec, rn] = co_await bhttp::async_read(sock, buf, res, kTuple);
    if (rec) co_return 0;
    error_code jec;
    auto v = json::parse(res.body(), jec);
    if (jec || !v.is_object()) co_return 0;
    auto* p = v.as_object().if_contains("pendingWaitUntil");
    co_return p && p->is_int64() ? static_cast<int>(p->as_int64()) : 0;
  }

  // ---- introspection

  std::string metricsText() override {
    std::string out;
    std::lock_guard lock(mu_);
    auto labelsOf = [](const FunctionState& fn) {
      return fmt::format("deployment=\"{}\",function=\"{}\"", promLabel(fn.def->deploymentId),
                         promLabel(fn.def->key));
    };
    auto counter = [&](std::string_view name, std::string_view help,
                       uint64_t FunctionState::*field) {
      out += fmt::format("# HELP {} {}\n# TYPE {} counter\n", name, help, name);
      for (auto& [id, fn] : functions_) {
        out += fmt::format("{}{{{}}} {}\n", name, labelsOf(*fn), (*fn).*field);
      }
    };
    out += "# HELP nimbus_function_invocations_total Invocations by status class.\n"
           "# TYPE nimbus_function_invocations_total counter\n";
    for (auto& [id, fn] : functions_) {
      for (auto& [cls, n] : fn->byStatusClass) {
        out += fmt::format("nimbus_function_invocations_total{{{},status=\"{}xx\"}} {}\n",
                           labelsOf(*fn), cls, n);
      }
    }
    counter("nimbus_function_errors_total", "Invocations answered with a 5xx status.",
            &FunctionState::errors);
    counter("nimbus_function_cold_starts_total", "Instances specialized for the function.",
            &FunctionState::coldStarts);
    counter("nimbus_function_timeouts_total", "Invocations over maxDuration.",
            &FunctionState::timeouts);
    counter("nimbus_function_crashes_total", "Instances that exited on their own.",
            &FunctionState::crashes);
    counter("nimbus_function_throttled_total", "Requests that found no slot in time (503).",
            &FunctionState::throttled);
    counter("nimbus_function_init_failures_total", "Cold starts that failed.",
            &FunctionState::initFailures);
    auto histogram = [&](std::string_view name, std::string_view help, Histogram FunctionState::*field) {
      out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
      for (auto& [id, fn] : functions_) ((*fn).*field).render(&out, name, labelsOf(*fn));
    };
    histogram("nimbus_function_duration_seconds", "Invocation time as the worker saw it.",
              &FunctionState::duration);
    histogram("nimbus_function_init_duration_seconds",
              "Cold start time: stem cell taken (or spawned) to specialized.",
              &FunctionState::init);
    histogram("nimbus_function_queue_wait_seconds", "Time until a slot was granted.",
              &FunctionState::queueWait);
    out += "# HELP nimbus_function_instances Live instances.\n# TYPE nimbus_function_instances gauge\n";
    for (auto& [id, fn] : functions_) {
      out += fmt::format("nimbus_function_instances{{{}}} {}\n", labelsOf(*fn), fn->instances.size());
    }
    out += "# HELP nimbus_stem_cells Started launchers waiting for a function.\n"
           "# TYPE nimbus_stem_cells gauge\n";
    for (auto& [key, p] : pools_) {
      out += fmt::format("nimbus_stem_cells{{pool=\"{}\"}} {}\n", promLabel(key), p.ready.size());
    }
    out += "# HELP nimbus_stem_cell_misses_total Cold starts that found the pool empty.\n"
           "# TYPE nimbus_stem_cell_misses_total counter\n";
    for (auto& [key, p] : pools_) {
      out += fmt::format("nimbus_stem_cell_misses_total{{pool=\"{}\"}} {}\n", promLabel(key), p.misses);
    }
    return out;
  }

  std::string statusJson() override {
    json::object root;
    json::array instances;
    json::array functions;
    json::object stems;
    auto now = SteadyClock::now();
    std::lock_guard lock(mu_);
    for (auto& [id, fn] : functions_) {
      json::object f;
      f["deployment"] = fn->def->deploymentId;
      f["function"] = fn->def->key;
      f["runtime"] = runtimeName(fn->def->runtime);
      f["middleware"] = fn->middleware;
      f["instances"] = fn->instances.size();
      f["starting"] = fn->starting;
      f["queued"] = fn->waiters.size();
      f["concurrency"] = fn->capacity;
      f["invocations"] = fn->invocations;
      f["coldStarts"] = fn->coldStarts;
      f["errors"] = fn->errors;
      functions.push_back(std::move(f));
      for (auto& inst : fn->instances) {
        json::object i;
        i["id"] = inst->id;
        i["pid"] = inst->pid;
        i["deployment"] = fn->def->deploymentId;
        i["function"] = fn->def->key;
        i["runtime"] = runtimeName(inst->runtime);
        i["state"] = inst->state == Instance::State::Ready ? "ready" : "draining";
        i["inflight"] = inst->inflight;
        i["concurrency"] = inst->capacity;
        i["invocations"] = inst->invocations;
        i["ageMs"] = static_cast<int64_t>(msSince(inst->startedAt));
        i["idleMs"] = inst->inflight > 0 ? 0
            : std::chrono::duration_cast<std::chrono::milliseconds>(now - inst->idleSince).count();
        i["initMs"] = inst->initMs;
        i["memoryMb"] = fn->memoryMb;
        instances.push_back(std::move(i));
      }
    }
    for (auto& [key, p] : pools_) {
      json::object s;
      s["ready"] = p.ready.size();
      s["starting"] = p.starting;
      s["taken"] = p.taken;
      s["misses"] = p.misses;
      stems[key] = std::move(s);
    }
    root["instances"] = std::move(instances);
    root["functions"] = std::move(functions);
    root["stemCells"] = std::move(stems);
    json::object settings;
    settings["keepAliveMs"] = options_.keepAlive.count();
    settings["maxInstances"] = options_.maxInstances;
    settings["stemCells"] = options_.stemCells;
    root["settings"] = std::move(settings);
    return json::serialize(root);
  }

 private:
  WorkerOptions options_;
  FunctionCatalog* catalog_;
  FunctionLog log_;
  std::string socketDir_;
  bool ownSocketDir_ = false;
  std::string nodePath_;
  asio::io_context bg_{1};
  asio::executor_work_guard<asio::io_context::executor_type> bgWork_;
  asio::steady_timer evictTimer_;
  asio::steady_timer flushTimer_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};

  std::mutex mu_;
  std::map<std::string, FunctionPtr> functions_;
  std::map<std::string, InstancePtr> all_;
  std::map<std::string, Pool> pools_;
  std::set<std::string> prepared_;     // deployments whose function files were written
  static constexpr int kMaxConcurrentSpawns = 1;
  int spawning_ = 0;                   // direct spawns (stem-cell pool misses) under way
  std::deque<FunctionPtr> deferred_;   // functions whose start waits for a spawn slot
};

Result<std::unique_ptr<Worker>> Worker::create(WorkerOptions options, FunctionCatalog* catalog) {
  auto w = std::make_unique<WorkerImpl>(std::move(options), catalog);
  if (auto r = w->start(); !r) return r.error();
  return std::unique_ptr<Worker>(std::move(w));
}

}  // namespace nimbus::worker
