//! The `toolhost` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;

use toolhost::config::Config;
use toolhost::plugins::oci::{self, BundleRef};

// Every call builds and drops a store, an instance and their tables: many
// small allocations from several threads, where glibc's malloc spent twice
// the native handler's time (host/benches/profile.sh). The native baseline
// uses the same allocator, so the ratio stays fair.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "toolhost",
    version,
    about = "A WebAssembly plugin host for AI-agent tool connectors"
)]
struct Cli {
    /// Folder of connector bundles (each a subfolder with connector.toml and
    /// its component) [default: plugins].
    #[arg(long, global = true, env = "TOOLHOST_PLUGINS_DIR")]
    plugins_dir: Option<PathBuf>,
    /// Where the host keeps its database and compile cache [default: data].
    #[arg(long, global = true, env = "TOOLHOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where compiled components are cached ([server] compile-cache-dir)
    /// [default: DATA_DIR/compile-cache].
    #[arg(long, global = true, env = "TOOLHOST_COMPILE_CACHE_DIR")]
    compile_cache_dir: Option<PathBuf>,
    /// The configuration file; `toolhost.toml` is read when it exists.
    #[arg(long, global = true, env = "TOOLHOST_CONFIG")]
    config: Option<PathBuf>,
    /// A PostgreSQL URL shared by every node, instead of the embedded
    /// database ([storage] url).
    #[arg(long, global = true, env = "TOOLHOST_STORAGE_URL", hide_env_values = true)]
    storage_url: Option<String>,
    /// This node's name among those sharing the database ([storage] node)
    /// [default: the host name].
    #[arg(long, global = true, env = "TOOLHOST_NODE")]
    node: Option<String>,
    /// How log lines are written to standard error.
    #[arg(long, global = true, env = "TOOLHOST_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the agent and operator HTTP API (and MCP at /mcp).
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long, env = "TOOLHOST_LISTEN")]
        listen: Option<SocketAddr>,
    },
    /// Try it: the reference connectors served against SAMPLE vendor
    /// systems started in-process on loopback, with their grants, the
    /// late-parcel workflow's and a voucher approval rule; data in ./demo.
    /// Prints the console, the tokens and what to call.
    #[cfg(feature = "demo")]
    Demo {
        /// Address to listen on.
        #[arg(long, env = "TOOLHOST_LISTEN", default_value = toolhost::demo::DEFAULT_LISTEN)]
        listen: SocketAddr,
    },
    /// List every tool of every plugin, with its JSON Schema, as JSON.
    Tools,
    /// Check the configuration and the bundles in the plugins folder without
    /// serving: one line per finding (`error:`/`warning:`, where, what to
    /// do); exits 1 when any is an error.
    Check,
    /// Sign and verify bundles (ed25519); push them to and pull them from
    /// OCI registries.
    Plugin {
        #[command(subcommand)]
        action: PluginCommand,
    },
    /// Call one tool once and print its JSON result.
    Call {
        /// `plugin.function` (or `plugin_function`).
        tool: String,
        /// The arguments, a JSON object; `-` reads it from standard input.
        #[arg(default_value = "{}")]
        args: String,
        /// Print the whole outcome: result, timings, outbound requests, denials.
        #[arg(long)]
        outcome: bool,
    },
    /// Create a connector project for one of the contract's worlds: it
    /// builds, tests natively and loads as it is.
    New(NewArgs),
    /// Build connector projects into components, each put beside its
    /// connector.toml as the manifest names it (installs the toolchain the
    /// first time).
    Build(BuildArgs),
    /// Build a connector project, serve it on loopback with a development
    /// grant, and rebuild and reload it whenever its sources change.
    Dev(DevArgs),
}

#[derive(clap::Args)]
struct NewArgs {
    /// crm-connector, erp-connector, logistics-connector or coupon-connector
    /// (or crm, erp, logistics, coupon).
    world: toolhost::devkit::templates::World,
    /// The plugin's name (a-z, 0-9, '-'): its tools are `<name>.<function>`.
    name: String,
    /// The folder to create [default: ./<name>].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A local toolhost-sdk crate to depend on [default: the SDK this
    /// binary was built from, if its checkout is still there; else
    /// crates.io].
    #[arg(long)]
    sdk: Option<PathBuf>,
}

#[derive(clap::Args)]
struct BuildOptions {
    /// Build with the debug profile (quicker to compile, larger).
    #[arg(long)]
    debug: bool,
    /// One cargo target folder for every project [default: each one's
    /// target/].
    #[arg(long)]
    target_dir: Option<PathBuf>,
}

impl BuildOptions {
    fn build(self, dirs: Vec<PathBuf>) -> toolhost::devkit::build::Build {
        use toolhost::devkit::build::{Build, Profile};
        Build {
            dirs,
            profile: if self.debug { Profile::Debug } else { Profile::Release },
            target_dir: self.target_dir,
        }
    }
}

#[derive(clap::Args)]
struct BuildArgs {
    /// Connector projects, or workspaces whose members are [default: .].
    dirs: Vec<PathBuf>,
    #[command(flatten)]
    options: BuildOptions,
}

#[derive(clap::Args)]
struct DevArgs {
    /// A connector project, or a workspace whose members are.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = toolhost::devkit::dev::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The bearer token to accept [default: a new random one, printed].
    #[arg(long, env = "TOOLHOST_DEV_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    options: BuildOptions,
}

fn new_command(args: NewArgs) -> anyhow::Result<ExitCode> {
    use toolhost::devkit::new::{create, NewProject, Sdk};
    let sdk = match &args.sdk {
        Some(path) => Sdk::at(path)?,
        None => Sdk::default_for_this_binary(),
    };
    let dir = create(&NewProject {
        world: args.world,
        name: args.name.clone(),
        dir: args.dir,
        sdk: sdk.clone(),
    })?;
    let from = match &sdk {
        Sdk::Path(path) => path.display().to_string(),
        Sdk::CratesIo => "crates.io".to_string(),
    };
    println!("{}", dir.display());
    eprintln!(
        "created {} for {} (toolhost-sdk from {from}); next:\n  cd {}\n  cargo test          # the connector's logic, natively\n  toolhost build      # the component, {}.wasm beside connector.toml\n  toolhost dev        # served on {} with dev.toml's grant, rebuilt on change",
        args.name,
        args.world,
        dir.display(),
        args.name,
        toolhost::devkit::dev::DEFAULT_LISTEN,
    );
    Ok(ExitCode::SUCCESS)
}

async fn build_command(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let dirs = if args.dirs.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.dirs
    };
    args.options.build(dirs).run().await?;
    Ok(ExitCode::SUCCESS)
}

async fn dev_command(args: DevArgs) -> anyhow::Result<ExitCode> {
    toolhost::devkit::dev::run(toolhost::devkit::dev::Dev {
        dir: args.dir,
        listen: args.listen,
        build: args.options.build(Vec::new()),
        token: args.token,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Make a key pair: the private key into a new file (mode 0600), the
    /// public key printed, for operators' `trusted-keys`.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a bundle folder: writes connector.sig over its component and
    /// manifest together.
    Sign {
        bundle: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a bundle folder's signature against one or more public keys.
    Verify {
        bundle: PathBuf,
        #[arg(long = "public-key", required = true)]
        public_keys: Vec<String>,
    },
    /// Store a bundle folder in an OCI registry, one layer per file (its
    /// signature too); prints the manifest digest, then the reference
    /// pinned by it. Credentials, if the registry needs them, come from
    /// TOOLHOST_REGISTRY_USER and TOOLHOST_REGISTRY_PASSWORD.
    Push {
        /// The bundle folder (connector.toml and its component, or
        /// workflow.yaml; the signature if signed).
        bundle: PathBuf,
        /// `registry[:port]/repository:tag` (`oci://` in front is accepted).
        reference: BundleRef,
        /// Reach this registry over plain HTTP (loopback ones always are).
        #[arg(long)]
        insecure: bool,
    },
    /// Fetch a bundle from an OCI registry into a new folder. A reference
    /// with @sha256:... must match that manifest exactly. The signature is
    /// checked when the host loads the bundle, as for any other.
    Pull {
        /// `registry[:port]/repository:tag` or `...@sha256:<hex>`.
        reference: BundleRef,
        /// The folder to create (it must not exist, or be empty).
        bundle: PathBuf,
        /// Reach this registry over plain HTTP (loopback ones always are).
        #[arg(long)]
        insecure: bool,
    },
}

async fn plugin_command(action: PluginCommand, config: &Config) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use toolhost::plugins::bundle::Bundle;
    use toolhost::plugins::signing;
    match action {
        PluginCommand::Keygen { out } => {
            let (private, public) = signing::keygen();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            writeln!(file, "{private}")?;
            println!("{public}");
            eprintln!("private key in {}; give operators the public key above", out.display());
        }
        PluginCommand::Sign { bundle, key } => {
            let private = std::fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?;
            let b = Bundle::read(&bundle)?;
            let signature = signing::sign(&private, b.payload(), b.manifest_text.as_bytes())?;
            std::fs::write(bundle.join(b.signature_file()), format!("{signature}\n"))?;
            println!("signed {} {} (component {})", b.name, b.version, b.digest);
        }
        PluginCommand::Verify { bundle, public_keys } => {
            let b = Bundle::read(&bundle)?;
            let Some(signature) = &b.signature else {
                bail!("{} has no {}", bundle.display(), b.signature_file());
            };
            let key = signing::verify(&public_keys, signature, b.payload(), b.manifest_text.as_bytes())?;
            println!("good signature by {key} on {} {}", b.name, b.version);
        }
        PluginCommand::Push {
            bundle,
            reference,
            insecure,
        } => {
            let registries = registries_for(config, &reference, insecure);
            let pushed = oci::push(&bundle, &reference, &registries).await?;
            println!("{}", pushed.digest);
            println!("{}", pushed.pinned);
            eprintln!(
                "pushed {} {} to {}; pin it with the reference above",
                pushed.config.name, pushed.config.version, pushed.reference
            );
        }
        PluginCommand::Pull {
            reference,
            bundle,
            insecure,
        } => {
            let registries = registries_for(config, &reference, insecure);
            let pulled = oci::pull(&reference, &bundle, &registries).await?;
            println!("{}", pulled.digest);
            eprintln!(
                "pulled {} {} ({} files) into {}",
                pulled.config.name,
                pulled.config.version,
                pulled.files.len(),
                bundle.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The configuration's registries, with `reference`'s reached over plain
/// HTTP when the command line says so.
fn registries_for(config: &Config, reference: &BundleRef, insecure: bool) -> oci::RegistriesConfig {
    let mut registries = config.registries.clone();
    if insecure {
        registries.insecure.push(reference.registry().to_string());
    }
    registries
}

/// Pull the configured `[sources]` into the plugins folder, as `serve`
/// does at start; whether every one is there to load.
async fn pull_sources(config: &Config) -> bool {
    let outcomes = oci::pull_sources(&config.sources, &config.server.plugins_dir, &config.registries).await;
    for outcome in &outcomes {
        eprintln!("toolhost: {outcome}");
    }
    !outcomes.iter().any(|o| o.failed())
}

/// What is logged when `TOOLHOST_LOG` says nothing: the host's warnings
/// and errors, what operators and the host change (plugins loaded, grants,
/// tokens; never one line per call), and what connectors write (their
/// `log` import at info and above, their stdout and stderr), which is
/// bounded per call.
const DEFAULT_LOG: &str = "warn,toolhost=info,connector=info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// One line of text per event, with its time.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`),
    /// for a log collector.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `check` says what it finds on stdout; the log would say it twice.
    let default_log = if matches!(cli.command, Command::Check) {
        "off"
    } else {
        DEFAULT_LOG
    };
    let ansi = matches!(cli.log_format, LogFormat::Text) && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOOLHOST_LOG").unwrap_or_else(|_| default_log.into()),
        )
        .with_writer(toolhost::logs::OneLine::new(std::io::stderr, ansi));
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(ansi).init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The file (if any), then environment and flags on top.
fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let default = PathBuf::from("toolhost.toml");
    let mut config = match &cli.config {
        Some(p) => Config::load(p)?,
        None if default.is_file() => Config::load(&default)?,
        None => Config::default(),
    };
    if let Some(dir) = &cli.plugins_dir {
        config.server.plugins_dir = dir.clone();
    }
    if let Some(dir) = &cli.data_dir {
        config.server.data_dir = dir.clone();
    }
    if let Some(dir) = &cli.compile_cache_dir {
        config.server.compile_cache_dir = Some(dir.clone());
    }
    if let Some(url) = &cli.storage_url {
        config.storage.url = Some(url.clone());
        config.storage.url_env = None;
    }
    if let Some(node) = &cli.node {
        config.storage.node = Some(node.clone());
    }
    if let Command::Serve { listen: Some(addr) } = &cli.command {
        config.server.listen = *addr;
    }
    Ok(config)
}

/// `toolhost check`: the findings on stdout, a count on stderr.
async fn check_command(cli: &Cli) -> anyhow::Result<ExitCode> {
    use toolhost::check::{check, CheckOptions};
    let default = PathBuf::from("toolhost.toml");
    let options = CheckOptions {
        config: cli.config.clone().or_else(|| default.is_file().then_some(default)),
        plugins_dir: cli.plugins_dir.clone(),
        data_dir: cli.data_dir.clone(),
    };
    let report = check(&options).await?;
    for finding in &report.findings {
        println!("{finding}");
    }
    eprintln!(
        "toolhost check: {} error(s), {} warning(s)",
        report.errors(),
        report.warnings()
    );
    Ok(if report.errors() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `toolhost demo`: its own configuration and folder, whatever the
/// environment says about a deployment's.
#[cfg(feature = "demo")]
async fn demo_command(cli: &Cli, listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let ignored: Vec<&str> = [
        ("--config", cli.config.is_some()),
        ("--data-dir", cli.data_dir.is_some()),
        ("--compile-cache-dir", cli.compile_cache_dir.is_some()),
        ("--storage-url", cli.storage_url.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, set)| set.then_some(flag))
    .collect();
    if !ignored.is_empty() {
        eprintln!(
            "toolhost demo: not using {} (or its TOOLHOST_* variable): the demo has its own configuration and keeps everything in ./{}",
            ignored.join(", "),
            toolhost::demo::DEFAULT_DIR
        );
    }
    raise_fd_limit();
    toolhost::demo::run(toolhost::demo::Demo {
        listen,
        plugins_dir: cli.plugins_dir.clone().unwrap_or_else(|| PathBuf::from("plugins")),
        dir: PathBuf::from(toolhost::demo::DEFAULT_DIR),
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Each connection is a file: systemd and most shells start a process at
/// 1,024 whatever the hard limit allows, and the connection cap is set
/// from what this leaves.
fn raise_fd_limit() {
    match toolhost::server::connections::raise_fd_limit() {
        Ok(files) => tracing::debug!("open-file limit: {files}"),
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // `check` reports a configuration that does not load; it does not fail on it.
    if matches!(cli.command, Command::Check) {
        return check_command(&cli).await;
    }
    #[cfg(feature = "demo")]
    if let Command::Demo { listen } = cli.command {
        return demo_command(&cli, listen).await;
    }
    // A vendor's commands read no operator's configuration.
    let mut config = if matches!(cli.command, Command::New(_) | Command::Build(_) | Command::Dev(_)) {
        Config::default()
    } else {
        load_config(&cli)?
    };
    // A one-shot command on a node's machine shares its database, and must
    // not pass for the serving node: at start a node closes the calls its
    // name left running, which would be the server's calls in flight.
    if !matches!(cli.command, Command::Serve { .. }) {
        config.storage.node = Some(format!("{}-cli", config.storage.node()));
    }
    match cli.command {
        Command::New(args) => new_command(args),
        Command::Build(args) => build_command(args).await,
        Command::Dev(args) => dev_command(args).await,
        Command::Plugin { action } => plugin_command(action, &config).await,
        Command::Check => unreachable!("`check` returns before the configuration is loaded"),
        #[cfg(feature = "demo")]
        Command::Demo { .. } => unreachable!("`demo` returns before the configuration is loaded"),
        Command::Serve { .. } => {
            raise_fd_limit();
            toolhost::server::serve(config.clone(), toolhost::server::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tools => {
            let runtime = toolhost::Runtime::from_config(&config).await?;
            let all_pulled = pull_sources(&config).await;
            let loaded = runtime.plugins().load_all().await?;
            let failed = loaded.iter().filter(|(_, r)| r.is_err()).count() + usize::from(!all_pulled);
            println!("{}", serde_json::to_string_pretty(&runtime.tools())?);
            Ok(if failed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Call { tool, args, outcome } => {
            let text = if args == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading arguments from standard input")?
            } else {
                args
            };
            let args: serde_json::Value = serde_json::from_str(&text).context("the arguments are not valid JSON")?;
            let runtime = toolhost::Runtime::from_config(&config).await?;
            let Some((plugin, _)) = toolhost::call::names::split(&tool) else {
                bail!("{tool:?} is not a tool name; tools are named plugin.function (see `toolhost tools`)");
            };
            pull_sources(&config).await;
            runtime.plugins().load_named(plugin).await?;
            // A call from the command line is a call like any other: audited.
            let caller = toolhost::model::audit::Caller {
                via: toolhost::model::audit::Channel::Cli,
                token: std::env::var("USER").ok().map(|u| format!("local:{u}")),
                ..Default::default()
            };
            let (result, _record) = runtime.call(&caller, &tool, &args, None).await?;
            if outcome {
                println!("{}", serde_json::to_string_pretty(&result)?);
            }
            match &result.result {
                Ok(value) => {
                    if !outcome {
                        println!("{}", serde_json::to_string_pretty(value)?);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
