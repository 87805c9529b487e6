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

fn load_settings(common: &Common, mut overrides: config::Overrides) -> Result<config::Settings, ExitCode> {
    overrides.database_url = common.database_url.clone();
    config::load(common.config.as_deref(), std::env::vars(), &overrides).map_err(|problems| {
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!("{} configuration problem(s)", problems.len());
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { common, no_migrate, listen, public_url, sessions_url, import_dir } => {
            let overrides = config::Overrides { listen, public_url, sessions_url, import_dir, ..Default::default() };
            match load_settings(&common, overrides) {
                Ok(settings) => {
                    logging::init(&settings.log);
                    serve::serve(settings, !no_migrate)
                }
                Err(code) => return code,
            }
        }
        Command::Migrate { common } => match load_settings(&common, config::Overrides::default()) {
            Ok(settings) => {
                logging::init(&settings.log);
                serve::migrate_only(&settings)
            }
            Err(code) => return code,
        },
        Command::CheckConfig { common, import_dir } => {
            let overrides = config::Overrides { import_dir, ..Default::default() };
            match load_settings(&common, overrides) {
                Ok(settings) => realm_files::check(&settings),
                Err(code) => return code,
            }
        }
        Command::Import { common, files } => match load_settings(&common, config::Overrides::default()) {
            Ok(settings) => {
                logging::init(&settings.log);
                serve::import(&settings, &files)
            }
            Err(code) => return code,
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("federa: {e}");
            ExitCode::FAILURE
        }
    }
}
