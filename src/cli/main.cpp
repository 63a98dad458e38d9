// nimbus: the single binary. Parses arguments and hands off to one subcommand.
#include <CLI/CLI.hpp>

#include <cstdlib>

#include "cli/cli.h"

namespace {

constexpr const char* kFooter = R"(
Quick start:
  nimbus serve                         # API on 127.0.0.1:3001, sites on 127.0.0.1:3000
  nimbus deploy ./my-app --prod        # a folder with .vercel/output (or the output itself)
  open http://my-app.localhost:3000/

Docs: docs/cli.md and docs/api.md in the Nimbus repository.)";

}  // namespace

int main(int argc, char** argv) {
  using namespace nimbus::cli;
  CLI::App app{"Nimbus: a self-hostable serverless platform for Build Output API deployments",
               "nimbus"};
  app.footer(kFooter);
  app.require_subcommand(1);
  app.set_version_flag("--version", "nimbus 0.1.0");

  GlobalOptions g;
  if (const char* v = std::getenv("NIMBUS_API")) g.api = v;
  if (g.api.empty()) g.api = "http://127.0.0.1:3001";
  if (const char* v = std::getenv("NIMBUS_TOKEN")) g.token = v;
  g.data = defaultDataDir();
  app.add_option("--api", g.api, "Control API address (env NIMBUS_API)")
      ->capture_default_str()->group("Global");
  app.add_option("--token", g.token,
                 "API bearer token (env NIMBUS_TOKEN; default: the admin-token file in the data "
                 "directory)")
      ->group("Global");
  app.add_option("--data", g.data, "Data directory (env NIMBUS_DATA)")
      ->capture_default_str()->group("Global");
  app.add_flag("--json", g.json, "Print machine-readable JSON")->group("Global");

  // serve
  ServeOptions serve;
  auto* serveCmd = app.add_subcommand(
      "serve", "Run the control API and the router in one process (embedded SQLite store)");
  serveCmd->add_option("--listen", serve.listen, "Public router address HOST:PORT (port 0: any)")
      ->capture_default_str();
  serveCmd->add_option("--api-listen", serve.apiListen, "Control API address HOST:PORT")
      ->capture_default_str();
  serveCmd->add_option("--domain", serve.domain,
                       "Domain for URLs: production at <project>.DOMAIN, previews at "
                       "<project>-<id>.DOMAIN")
      ->capture_default_str();
  serveCmd->add_option("--threads", serve.threads, "Router threads (default: one per core)");
  serveCmd->add_option("--access-log", serve.accessLog,
                       "Access log file, one JSON line per request; '-' for stdout, 'off' to "
                       "disable (default: <data>/logs/access.log)");
  serveCmd->add_option("--max-file-mb", serve.maxBlobMb, "Largest file a deployment may contain, in MiB")
      ->capture_default_str();
  serveCmd->add_option("--runtimes", serve.runtimesDir,
                       "Directory holding the function launchers (node/, edge/); default: "
                       "$NIMBUS_RUNTIMES, else the repository's runtimes/")
      ->group("Functions");
  serveCmd->add_option("--node", serve.node, "Node.js binary for the Node and edge runtimes")
      ->capture_default_str()->group("Functions");
  serveCmd->add_option("--stem-cells", serve.stemCells,
                       "Launchers kept started per runtime and memory size, ready to specialize "
                       "on a cold start (0: spawn on demand)")
      ->capture_default_str()->check(CLI::Range(0, 64))->group("Functions");
  serveCmd->add_option("--keep-alive", serve.keepAliveS,
                       "Seconds an idle instance stays before it is stopped (scale to zero)")
      ->capture_default_str()->check(CLI::Range(0.01, 86400.0))->group("Functions");
  serveCmd->add_option("--max-instances", serve.maxInstances, "Most instances per function")
      ->capture_default_str()->check(CLI::Range(1, 1000))->group("Functions");
  serveCmd->add_option("--concurrency", serve.concurrency,
                       "Target concurrent requests per Node.js instance (a function's "
                       "maxConcurrency overrides it; edge instances take 4x)")
      ->capture_default_str()->check(CLI::Range(1, 1000))->group("Functions");
  serveCmd->add_option("--queue-timeout", serve.queueTimeoutS,
                       "Seconds a request waits for a free instance before 503 FUNCTION_THROTTLED")
      ->capture_default_str()->check(CLI::Range(0.01, 3600.0))->group("Functions");
  serveCmd->add_option("--max-duration", serve.maxDurationS,
                       "Default maxDuration in seconds for functions that set none")
      ->capture_default_str()->check(CLI::Range(1, 900))->group("Functions");
  serveCmd->footer(
      "\nOn start it prints the URLs, then one line 'nimbus ready {json}' with the bound\n"
      "addresses. The first start creates an admin token in <data>/admin-token (mode 0600).\n"
      "Functions run as Node.js processes (no sandbox yet); their logs are in\n"
      "<data>/logs/functions and `nimbus logs`; metrics at http://<api>/metrics.");

  // deploy
  DeployOptions deploy;
  auto* deployCmd = app.add_subcommand(
      "deploy", "Deploy a Build Output API directory (.vercel/output) as a new immutable deployment");
  deployCmd->add_option("dir", deploy.dir,
                        "A folder holding .vercel/output, or the output folder itself")
      ->capture_default_str();
  deployCmd->add_option("--project,-p", deploy.project,
                        "Project name (default: derived from the folder name)");
  deployCmd->add_flag("--prod", deploy.prod, "Make it the project's production deployment");
  deployCmd->footer(
      "\nValidates everything first and reports every problem; uploads only the files the\n"
      "server does not have yet; prints the preview URL (and the production URL with --prod).");

  std::string project;
  auto* lsCmd = app.add_subcommand("ls", "List deployments, newest first");
  lsCmd->add_option("project", project, "Only this project's deployments");

  std::string what;
  auto* inspectCmd = app.add_subcommand("inspect", "Show one deployment");
  inspectCmd->add_option("deployment", what, "Deployment id or one of its URLs")->required();

  std::string id;
  auto* promoteCmd = app.add_subcommand("promote", "Make a deployment its project's production deployment");
  promoteCmd->add_option("deployment", id, "Deployment id")->required();

  auto* rollbackCmd = app.add_subcommand(
      "rollback", "Point production back at the previous production deployment");
  rollbackCmd->add_option("project", project,
                          "Project name (may be omitted when there is only one project)");

  auto* rmCmd = app.add_subcommand("rm", "Delete a deployment (never the current production one)");
  rmCmd->add_option("deployment", id, "Deployment id")->required();

  auto* projectsCmd = app.add_subcommand("projects", "List projects with their production URL");

  auto* psCmd = app.add_subcommand("ps", "Show function instances, per function, and stem cells");
  psCmd->footer(
      "\nOne row per running instance: function, deployment, state, requests in flight\n"
      "against its concurrency, invocations served, age and idle time. Functions with no\n"
      "instance (scaled to zero) are listed with 0.");

  std::string logsTarget;
  bool logsFollow = false;
  int logsLines = 100;
  auto* logsCmd = app.add_subcommand("logs", "Show a deployment's function logs");
  logsCmd->add_option("deployment", logsTarget, "Deployment id or one of its URLs")->required();
  logsCmd->add_flag("--follow,-f", logsFollow, "Keep printing new records as they arrive");
  logsCmd->add_option("--lines,-n", logsLines, "How many of the latest records to show first")
      ->capture_default_str()->check(CLI::Range(0, 100000));
  logsCmd->footer(
      "\nEach invocation prints one line (time, request id, function, status, duration,\n"
      "cold/warm with init time, instance, peak memory), and every line the function wrote\n"
      "to stdout/stderr, tagged with the request that wrote it. --json prints the records.");

  auto* aliasCmd = app.add_subcommand("alias", "Custom host names for deployments");
  aliasCmd->require_subcommand(1);
  std::string host;
  auto* aliasSet = aliasCmd->add_subcommand("set", "Serve a deployment at a host name");
  aliasSet->add_option("host", host, "Host name, e.g. www.example.com")->required();
  aliasSet->add_option("deployment", id, "Deployment id")->required();
  auto* aliasLs = aliasCmd->add_subcommand("ls", "List aliases");
  auto* aliasRm = aliasCmd->add_subcommand("rm", "Remove an alias");
  aliasRm->add_option("host", host, "Host name")->required();

  auto* envCmd = app.add_subcommand(
      "env", "Environment variables of a project, per environment, encrypted at rest");
  envCmd->require_subcommand(1);
  EnvOptions env;
  std::string envValue;
  auto* envAdd = envCmd->add_subcommand(
      "add", "Set a variable (new deployments get it; existing ones keep their snapshot)");
  envAdd->add_option("key", env.key, "Variable name ([A-Za-z_][A-Za-z0-9_]*)")->required();
  auto* envValueOpt = envAdd->add_option(
      "value", envValue, "Its value (omit to read it from standard input, keeping it out of "
                         "your shell history)");
  auto* envLs = envCmd->add_subcommand("ls", "List variables (names only unless --values)");
  envLs->add_flag("--values", env.values, "Also print the decrypted values");
  auto* envRm = envCmd->add_subcommand("rm", "Remove a variable");
  envRm->add_option("key", env.key, "Variable name")->required();
  for (auto* sub : {envAdd, envLs, envRm}) {
    sub->add_option("--project,-p", env.project, "Project (default: the current folder's name)");
  }
  for (auto* sub : {envAdd, envRm}) {
    sub->add_option("--environment,-e", env.environment,
                    "production or preview (default: both)")
        ->check(CLI::IsMember({"production", "preview"}));
  }

  auto* tlsCmd = app.add_subcommand(
      "upstream-tls",
      "TLS for a project's HTTPS upstreams (routes whose dest is an https:// URL): CA and mTLS "
      "client certificate");
  tlsCmd->require_subcommand(1);
  UpstreamTlsOptions tls;
  auto* tlsSet = tlsCmd->add_subcommand("set", "Set the CA and/or client certificate for a project");
  tlsSet->add_option("project", tls.project, "Project name")->required();
  tlsSet->add_option("--ca", tls.caFile, "PEM file of the CA(s) that sign the upstream's certificate")
      ->check(CLI::ExistingFile);
  tlsSet->add_option("--cert", tls.certFile, "PEM client certificate (chain) for mTLS")
      ->check(CLI::ExistingFile);
  tlsSet->add_option("--key", tls.keyFile, "PEM private key of --cert (unencrypted)")
      ->check(CLI::ExistingFile);
  tlsSet->add_flag("--no-verify", tls.noVerify,
                   "Accept any upstream certificate (testing only; traffic stays encrypted)");
  auto* tlsShow = tlsCmd->add_subcommand("show", "Show what is configured (never the key)");
  tlsShow->add_option("project", project, "Project name")->required();
  auto* tlsRm = tlsCmd->add_subcommand("rm", "Remove the settings (back to the system trust store)");
  tlsRm->add_option("project", project, "Project name")->required();

  auto* tokenCmd = app.add_subcommand("token", "API tokens");
  tokenCmd->require_subcommand(1);
  std::string tokenName = "cli";
  auto* tokenCreate = tokenCmd->add_subcommand("create", "Create a token (its secret is shown once)");
  tokenCreate->add_option("--name", tokenName, "A name to recognise it by")->capture_default_str();
  auto* tokenLs = tokenCmd->add_subcommand("ls", "List tokens");
  auto* tokenRevoke = tokenCmd->add_subcommand("revoke", "Revoke a token");
  tokenRevoke->add_option("id", id, "Token id (tok_...)")->required();

  constexpr const char* kGlobalNote =
      "\nGlobal options (--api, --token, --data, --json) may follow the command; see "
      "`nimbus --help`.";
  for (auto* sub : app.get_subcommands({})) {
    sub->fallthrough();
    sub->footer(sub->get_footer().empty() || sub->get_footer() == kFooter
                    ? std::string(kGlobalNote)
                    : sub->get_footer() + "\n" + kGlobalNote);
    for (auto* inner : sub->get_subcommands({})) {
      inner->fallthrough();
      inner->footer(kGlobalNote);
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  if (serveCmd->parsed()) return runServe(g, serve);
  if (deployCmd->parsed()) return runDeploy(g, deploy);
  if (lsCmd->parsed()) return runList(g, project);
  if (inspectCmd->parsed()) return runInspect(g, what);
  if (promoteCmd->parsed()) return runPromote(g, id);
  if (rollbackCmd->parsed()) return runRollback(g, project);
  if (rmCmd->parsed()) return runRemove(g, id);
  if (projectsCmd->parsed()) return runProjects(g);
  if (psCmd->parsed()) return runPs(g);
  if (logsCmd->parsed()) return runLogs(g, logsTarget, logsFollow, logsLines);
  if (aliasSet->parsed()) return runAliasSet(g, host, id);
  if (aliasLs->parsed()) return runAliasList(g);
  if (aliasRm->parsed()) return runAliasRemove(g, host);
  if (envAdd->parsed()) {
    if (envValueOpt->count() > 0) env.value = envValue;
    return runEnvAdd(g, env);
  }
  if (envLs->parsed()) return runEnvList(g, env);
  if (envRm->parsed()) return runEnvRemove(g, env);
  if (tlsSet->parsed()) return runUpstreamTlsSet(g, tls);
  if (tlsShow->parsed()) return runUpstreamTlsShow(g, project);
  if (tlsRm->parsed()) return runUpstreamTlsRemove(g, project);
  if (tokenCreate->parsed()) return runTokenCreate(g, tokenName);
  if (tokenLs->parsed()) return runTokenList(g);
  if (tokenRevoke->parsed()) return runTokenRevoke(g, id);
  return 2;
}
