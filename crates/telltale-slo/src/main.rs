//! `telltale-slo`: generate SLO rules, routes, dashboards and runbooks from a spec, or read
//! the remaining error budget from Prometheus.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use telltale_slo::ServiceSpec;

#[derive(Parser)]
#[command(name = "telltale-slo", version, about = "SLOs as code for telltale services")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a spec and write Prometheus rules, the Alertmanager config, a Grafana
    /// dashboard and runbooks under `--out`.
    Generate {
        /// The YAML spec.
        spec: PathBuf,
        /// Output directory (created if missing).
        #[arg(long, default_value = "target/slo")]
        out: PathBuf,
    },
    /// Validate a spec and print nothing but errors.
    Check {
        /// The YAML spec.
        spec: PathBuf,
    },
    /// Error budget consumed and remaining per SLO, from a running Prometheus.
    Budget {
        /// Prometheus base URL, e.g. http://127.0.0.1:9090.
        #[arg(long)]
        prometheus: String,
        /// The YAML spec.
        spec: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Generate { spec, out } => {
            let spec = ServiceSpec::from_yaml_file(&spec)?;
            let generated = telltale_slo::generate(&spec);
            generated
                .write_to(&out)
                .map_err(|e| format!("writing {}: {e}", out.display()))?;
            for file in generated.files.keys() {
                println!("{}", out.join(file).display());
            }
        }
        Command::Check { spec } => {
            ServiceSpec::from_yaml_file(&spec)?;
        }
        Command::Budget { prometheus, spec } => {
            let spec = ServiceSpec::from_yaml_file(&spec)?;
            for report in telltale_slo::budget::budget(&prometheus, &spec)? {
                println!("{report}");
            }
        }
    }
    Ok(())
}
