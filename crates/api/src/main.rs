//! `api`: the control-plane binary. `api serve` (the default) runs the server; the other commands
//! manage brands, keys and dashboard users from a shell.

use std::time::Instant;

use anyhow::bail;
use clap::{Parser, Subcommand};
use uuid::Uuid;

use api::config::KvSinkConfig;
use api::sync::{self, CloudflareKv, WorkerKv};
use api::{brands, db, server, telemetry, users, Config};

/// Links per KV bulk request during a resync (lowered to what the sink accepts).
const RESYNC_PAGE: i64 = 10_000;

#[derive(Parser)]
#[command(name = "api", about = "Tracking Links control plane")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve {
        /// Only answer requests: run none of the background tasks (KV sync, rollup folding, retention,
        /// re-attribution, the confirmation sweep, webhook delivery, destination and domain checks).
        /// At least one process of a deployment must run without this flag.
        #[arg(long)]
        no_background: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage brands.
    Brand {
        #[command(subcommand)]
        command: BrandCommand,
    },
    /// Manage a brand's API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage the people who sign in to a brand's dashboard.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Workers KV, where the edge reads link records.
    Kv {
        #[command(subcommand)]
        command: KvCommand,
    },
    /// Shopify webhook deliveries.
    Shopify {
        #[command(subcommand)]
        command: ShopifyCommand,
    },
    /// Brands' own short domains.
    Domain {
        #[command(subcommand)]
        command: DomainCommand,
    },
    /// The keys signed statements are signed with.
    StatementKey {
        #[command(subcommand)]
        command: StatementKeyCommand,
    },
}

#[derive(Subcommand)]
enum StatementKeyCommand {
    /// Make a fresh signing key: prints its id, the STATEMENT_SIGNING_KEY value (secret: put it in the
    /// environment, nowhere else) and its public key (for STATEMENT_RETIRED_KEYS once it is replaced).
    Create,
}

#[derive(Subcommand)]
enum DomainCommand {
    /// Mark a pending domain active without Cloudflare's check (local development, or a domain an
    /// operator verified otherwise): links may then use it.
    Activate {
        /// The domain, e.g. go.brand.com.
        hostname: String,
    },
}

#[derive(Subcommand)]
enum ShopifyCommand {
    /// Process again every kept delivery that failed, from its stored body (after a fix).
    Replay,
}

#[derive(Subcommand)]
enum KvCommand {
    /// Push every active link and delete every inactive one through the configured KV_SINK
    /// (disaster recovery: an emptied or new namespace).
    Resync,
    /// List the link changes KV refused (parked), with KV's reason.
    Parked,
    /// Put every parked change back in the queue: the running drainer pushes those links' current state
    /// again (after the cause is fixed), and parks again what KV still refuses.
    Retry,
}

#[derive(Subcommand)]
enum BrandCommand {
    /// Create a brand; prints its id, its first API key (shown once) and its pixel id.
    Create {
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Add an API key to a brand; prints it (shown once).
    Create {
        #[arg(long)]
        brand: Uuid,
    },
    /// Revoke the key with this prefix (`csk_xxxxxxxx` or `xxxxxxxx`).
    Revoke { key_prefix: String },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a dashboard user of a brand; prints a generated password (shown once), or takes the
    /// password from the first line of stdin with --password-stdin.
    Create {
        #[arg(long)]
        brand: Uuid,
        #[arg(long)]
        email: String,
        /// Read the password from stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List a brand's users: email, status (active or disabled), creation time, sessions, id.
    List {
        #[arg(long)]
        brand: Uuid,
    },
    /// Disable a user: its sessions end at once and it cannot sign in until enabled.
    Disable { email: String },
    /// Let a disabled user sign in again.
    Enable { email: String },
    /// Give a user a new password, generated and printed (shown once) or from the first line of stdin
    /// with --password-stdin; its sessions end at once.
    ResetPassword {
        email: String,
        /// Read the password from stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// The first line of stdin, without its line ending.
fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// The allocator: mimalloc. The API allocates and frees a request's buffers on whichever worker thread
/// runs it; glibc's malloc spent about a fifth of the process's own CPU on it (consolidating and
/// unlinking chunks), mimalloc's thread-local free lists a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let cli = Cli::parse();
    if let Some(Command::StatementKey { command: StatementKeyCommand::Create }) = cli.command {
        // Needs no configuration: a fresh key is made before (or while) one is set.
        let key = api::statements::generate_key(chrono::Utc::now());
        println!("kid: {}", key.kid);
        println!("STATEMENT_SIGNING_KEY={}", key.setting);
        println!("public_key: {}", key.public_key);
        println!("retired_entry: {}:{}", key.kid, key.public_key);
        return Ok(());
    }
    let config = Config::from_env()?;
    match cli.command.unwrap_or(Command::Serve { no_background: false }) {
        Command::Serve { no_background } => {
            let background = if no_background { server::Background::Off } else { server::Background::Run };
            server::serve(config, background).await
        }
        Command::Migrate => db::connect_and_migrate(&config).await.map(drop),
        Command::Brand { command: BrandCommand::Create { name } } => {
            let pool = db::connect_and_migrate(&config).await?;
            let brand = brands::create_brand(&pool, &name).await?;
            println!("brand_id: {}", brand.brand_id);
            println!("api_key: {}", brand.api_key);
            println!("pixel_id: {}", brand.pixel_id);
            Ok(())
        }
        Command::Key { command: KeyCommand::Create { brand } } => {
            let pool = db::connect_and_migrate(&config).await?;
            println!("api_key: {}", brands::create_key(&pool, brand).await?);
            Ok(())
        }
        Command::Key { command: KeyCommand::Revoke { key_prefix } } => {
            let pool = db::connect_and_migrate(&config).await?;
            brands::revoke_key(&pool, &key_prefix).await?;
            println!("revoked: {key_prefix}");
            Ok(())
        }
        Command::User { command: UserCommand::Create { brand, email, password_stdin } } => {
            let (password, generated) =
                if password_stdin { (read_password_line()?, false) } else { (users::generate_password(), true) };
            let pool = db::connect_and_migrate(&config).await?;
            let user_id = users::create_user(&pool, brand, &email, &password).await?;
            println!("user_id: {user_id}");
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
        Command::User { command: UserCommand::List { brand } } => {
            let pool = db::connect_and_migrate(&config).await?;
            println!("email\tstatus\tcreated_at\tsessions\tuser_id");
            for user in users::list_users(&pool, brand).await? {
                let status = if user.disabled_at.is_some() { "disabled" } else { "active" };
                let created_at = user.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                println!("{}\t{status}\t{created_at}\t{}\t{}", user.email, user.sessions, user.id);
            }
            Ok(())
        }
        Command::User { command: UserCommand::Disable { email } } => {
            let pool = db::connect_and_migrate(&config).await?;
            let ended = users::disable_user(&pool, &email).await?;
            println!("disabled: {}", email.trim().to_lowercase());
            println!("sessions_ended: {ended}");
            Ok(())
        }
        Command::User { command: UserCommand::Enable { email } } => {
            let pool = db::connect_and_migrate(&config).await?;
            users::enable_user(&pool, &email).await?;
            println!("enabled: {}", email.trim().to_lowercase());
            Ok(())
        }
        Command::User { command: UserCommand::ResetPassword { email, password_stdin } } => {
            let (password, generated) =
                if password_stdin { (read_password_line()?, false) } else { (users::generate_password(), true) };
            let pool = db::connect_and_migrate(&config).await?;
            let ended = users::reset_password(&pool, &email, &password).await?;
            println!("sessions_ended: {ended}");
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
        Command::Domain { command: DomainCommand::Activate { hostname } } => {
            let pool = db::connect_and_migrate(&config).await?;
            match api::domains::Domains::activate(&pool, &hostname).await {
                Ok(true) => println!("active: {hostname}"),
                Ok(false) => println!("already active: {hostname}"),
                Err(api::domains::DomainError::NotFound) => anyhow::bail!("no brand has added the domain {hostname}"),
                Err(e) => return Err(e.into()),
            }
            Ok(())
        }
        Command::Shopify { command: ShopifyCommand::Replay } => {
            let pool = db::connect_and_migrate(&config).await?;
            let replay = api::shopify::replay_failed(&pool, api::shopify::Rules::of(&config)).await?;
            println!("processed: {}", replay.processed);
            println!("still_failing: {}", replay.still_failing);
            Ok(())
        }
        Command::Kv { command: KvCommand::Resync } => {
            let pool = db::connect_and_migrate(&config).await?;
            let started = Instant::now();
            let report = match &config.kv_sink {
                KvSinkConfig::None => bail!("KV_SINK is none: set KV_SINK=worker or cloudflare and its settings"),
                KvSinkConfig::Worker { url, token } => {
                    sync::resync(&pool, &WorkerKv::new(url, token.clone())?, RESYNC_PAGE).await?
                }
                KvSinkConfig::Cloudflare { api_base, account_id, namespace_id, token } => {
                    let sink = CloudflareKv::new(api_base, account_id, namespace_id, token.clone())?;
                    sync::resync(&pool, &sink, RESYNC_PAGE).await?
                }
            };
            println!("written: {}", report.written);
            println!("deleted: {}", report.deleted);
            println!("parked: {}", report.parked);
            println!("seconds: {:.2}", started.elapsed().as_secs_f64());
            Ok(())
        }
        Command::Kv { command: KvCommand::Parked } => {
            let pool = db::connect_and_migrate(&config).await?;
            let parked = sync::list_parked(&pool).await?;
            println!("parked: {}", parked.len());
            for change in parked {
                println!(
                    "{} version {} link {} parked {}: {}",
                    change.code,
                    change.version,
                    change.link_id,
                    change.parked_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    change.error
                );
            }
            Ok(())
        }
        Command::StatementKey { command: StatementKeyCommand::Create } => Ok(()),
        Command::Kv { command: KvCommand::Retry } => {
            let pool = db::connect_and_migrate(&config).await?;
            println!("retried: {}", sync::retry_parked(&pool).await?);
            Ok(())
        }
    }
}
