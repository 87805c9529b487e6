//! The `federa` binary: the command line, configuration, logging and the
//! wiring of storage, sessions and the HTTP server.

pub mod config;
mod logging;
mod realm_files;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Federa, an OpenID Connect identity broker.
#[derive(Parser)]
#[command(name = "federa", version, about, disable_help_subcommand = false)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Flags shared by every command.
#[derive(clap::Args, Clone, Default)]
struct Common {
    /// The TOML configuration file.
    #[arg(long, env = "FEDERA_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides `database.url`.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server (migrating the database first unless --no-migrate).
    Serve {
        #[command(flatten)]
        common: Common,
        /// Do not run pending migrations at start.
        #[arg(long)]
        no_migrate: bool,
        /// Overrides `server.listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Overrides `server.public_url`.
        #[arg(long)]
        public_url: Option<String>,
        /// Overrides `sessions.url`.
        #[arg(long)]
        sessions_url: Option<String>,
        /// Overrides `realms.import_dir`.
        #[arg(long)]
        import_dir: Option<PathBuf>,
    },
    /// Runs pending database migrations and exits.
    Migrate {
        #[command(flatten)]
        common: Common,
    },
    /// Validates the configuration and realm files; lists every problem.
    CheckConfig {
        #[command(flatten)]
        common: Common,
        /// Overrides `realms.import_dir`.
        #[arg(long)]
        import_dir: Option<PathBuf>,
    },
    /// Imports realm files into the database and exits.
    Import {
        #[command(flatten)]
        common: Common,
        /// Realm files (Keycloak realm exports).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Whether unknown `FEDERA_` variables stop the command: they do for
/// `check-config`, whose job is to report them, and not for the others, which
/// log them and go on (Kubernetes sets some in every pod).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// Warnings are problems.
    Strict,
    /// Warnings are logged once logging is set up.
    Lenient,
}

fn load_settings(
    common: &Common,
    mut overrides: config::Overrides,
    strictness: Strictness,
) -> Result<config::Loaded, ExitCode> {
    overrides.database_url = common.database_url.clone();
    let problems = match config::load(common.config.as_deref(), std::env::vars(), &overrides) {
        Ok(loaded) if strictness == Strictness::Lenient || loaded.warnings.is_empty() => return Ok(loaded),
        Ok(loaded) => loaded.warnings,
        Err(problems) => problems,
    };
    let mut count = 0;
    for p in &problems {
        if strictness == Strictness::Strict || p.is_error() {
            eprintln!("{p}");
            count += 1;
        } else {
            eprintln!("ignored {p}");
        }
    }
    eprintln!("{count} configuration problem(s)");
    Err(ExitCode::from(2))
}

/// Sets up logging, then logs each warning found in the configuration: one
/// line per variable, naming it but never showing its value.
fn start(loaded: config::Loaded) -> config::Settings {
    logging::init(&loaded.settings.log);
    for warning in &loaded.warnings {
        log::warn!("ignored {warning}");
    }
    loaded.settings
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { common, no_migrate, listen, public_url, sessions_url, import_dir } => {
            let overrides = config::Overrides { listen, public_url, sessions_url, import_dir, ..Default::default() };
            match load_settings(&common, overrides, Strictness::Lenient) {
                Ok(loaded) => serve::serve(start(loaded), !no_migrate),
                Err(code) => return code,
            }
        }
        Command::Migrate { common } => {
            match load_settings(&common, config::Overrides::default(), Strictness::Lenient) {
                Ok(loaded) => serve::migrate_only(&start(loaded)),
                Err(code) => return code,
            }
        }
        Command::CheckConfig { common, import_dir } => {
            let overrides = config::Overrides { import_dir, ..Default::default() };
            match load_settings(&common, overrides, Strictness::Strict) {
                Ok(loaded) => realm_files::check(&loaded.settings),
                Err(code) => return code,
            }
        }
        Command::Import { common, files } => {
            match load_settings(&common, config::Overrides::default(), Strictness::Lenient) {
                Ok(loaded) => serve::import(&start(loaded), &files),
                Err(code) => return code,
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("federa: {e}");
            ExitCode::FAILURE
        }
    }
}
