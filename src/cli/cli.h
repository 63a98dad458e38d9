#pragma once
// The `nimbus` command: argument parsing and wiring. Each subcommand is a function taking
// its parsed options and returning the process exit status (0 ok, 1 failure).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nimbus::cli {

struct GlobalOptions {
  std::string api;      // --api / NIMBUS_API
  std::string token;    // --token / NIMBUS_TOKEN
  std::string data;     // --data / NIMBUS_DATA
  bool json = false;    // --json
};

struct ServeOptions {
  std::string listen = "127.0.0.1:3000";
  std::string apiListen = "127.0.0.1:3001";
  std::string domain = "localhost";
  unsigned threads = 0;             // 0: one per core
  std::string accessLog;            // empty: <data>/logs/access.log
  uint64_t maxBlobMb = 512;
  // Functions (see worker::WorkerOptions for the meaning of each).
  std::string runtimesDir;          // empty: $NIMBUS_RUNTIMES, else the built-in path
  std::string node = "node";
  int stemCells = 2;
  double keepAliveS = 300;
  int maxInstances = 20;
  int concurrency = 64;
  double queueTimeoutS = 30;
  int maxDurationS = 300;
};

struct DeployOptions {
  std::string dir = ".";
  std::string project;
  bool prod = false;
};

// Default data dir: $NIMBUS_DATA, else $XDG_DATA_HOME/nimbus, else ~/.local/share/nimbus.
std::string defaultDataDir();

int runServe(const GlobalOptions& g, const ServeOptions& o);
int runPs(const GlobalOptions& g);
int runLogs(const GlobalOptions& g, const std::string& deployment, bool follow, int lines);
int runDeploy(const GlobalOptions& g, const DeployOptions& o);
int runList(const GlobalOptions& g, const std::string& project);
int runInspect(const GlobalOptions& g, const std::string& what);
int runPromote(const GlobalOptions& g, const std::string& id);
int runRollback(const GlobalOptions& g, const std::string& project);
int runRemove(const GlobalOptions& g, const std::string& id);
int runProjects(const GlobalOptions& g);
int runAliasSet(const GlobalOptions& g, const std::string& host, const std::string& id);
int runAliasList(const GlobalOptions& g);
int runAliasRemove(const GlobalOptions& g, const std::string& host);
struct UpstreamTlsOptions {
  std::string project;
  std::string caFile;
  std::string certFile;
  std::string keyFile;
  bool noVerify = false;
};
int runUpstreamTlsSet(const GlobalOptions& g, const UpstreamTlsOptions& o);
int runUpstreamTlsShow(const GlobalOptions& g, const std::string& project);
int runUpstreamTlsRemove(const GlobalOptions& g, const std::string& project);
struct EnvOptions {
  std::string project;       // default: the current folder's name
  std::string key;
  std::optional<std::string> value;  // add: read from stdin when absent
  std::string environment;   // "production", "preview" or "" for both
  bool values = false;       // ls: show values
};
int runEnvAdd(const GlobalOptions& g, const EnvOptions& o);
int runEnvList(const GlobalOptions& g, const EnvOptions& o);
int runEnvRemove(const GlobalOptions& g, const EnvOptions& o);
int runTokenCreate(const GlobalOptions& g, const std::string& name);
int runTokenList(const GlobalOptions& g);
int runTokenRevoke(const GlobalOptions& g, const std::string& id);

// Prints "error: <message>" to stderr and returns 1.
int fail(const std::string& message);

}  // namespace nimbus::cli
