//! The report's prose: what was run, how, and how the CPU figures are made.

use std::fmt::Write as _;

use crate::open_loop::LATE_AFTER;
use crate::process::clk_tck;
use crate::report::{git_commit, machine, secs, today};
use crate::summary::{Results, SIGNATURES_PER_OP};
use crate::SCOPE;

impl Results<'_> {
    pub(crate) fn header(&self, doc: &mut String) {
        let m = machine();
        let args: Vec<String> = std::env::args().skip(1).collect();
        let _ = writeln!(doc, "- Date: {} (UTC)", today());
        let _ = writeln!(doc, "- Commit: {}", git_commit());
        let _ = writeln!(doc, "- Machine: {} CPUs ({}), {} memory", m.cpus, m.cpu_model, m.memory);
        let _ = writeln!(doc, "- Command: `make bench`, which ran `federa-bench {}`", args.join(" "));
        let _ = writeln!(
            doc,
            "- Everything on this one machine: the release `federa serve` (SQLite and embedded sessions, the \
             defaults, in a fresh temporary folder; `RUST_LOG=warn,federa::serve=info`), the load generator, the \
             fast upstream (in the generator's process) and the oidc-provider upstream (Node.js)."
        );
        // Over the windows without oidc-provider, whatever ran besides
        // Federa and the harness belonged to someone else.
        let mut windows = vec![self.fast.cpu, self.open_logins.cpu, self.ex.cpu, self.open_ex.cpu];
        windows.retain(|c| c.wall > 0.0);
        let wall: f64 = windows.iter().map(|c| c.wall).sum();
        let others: f64 = windows.iter().map(|c| c.others()).sum();
        let _ = writeln!(
            doc,
            "- **The machine was shared during the run**: over the measured windows without oidc-provider, \
             processes other than Federa and the harness (other builds on this machine) used {:.2} of its {} \
             cores on average (the CPU table below has each window). Compare figures from this one run only.\n",
            if wall > 0.0 { others / wall } else { 0.0 },
            m.cpus
        );
        let _ = writeln!(doc, "## Settings\n");
        let (f, a) = (self.fast, self.args);
        let _ = writeln!(
            doc,
            "- Brokered sign-ins, fast upstream (`federa_tests::bad_idp::BadIdp`, ES256, a new user per sign-in), \
             closed loop: {} virtual users, {:.0} s warm-up, then {:.0} s measured.",
            f.vus,
            secs(f.warmup),
            secs(f.measured)
        );
        match self.node {
            Some(r) => {
                let _ = writeln!(
                    doc,
                    "- Brokered sign-ins, oidc-provider upstream (`federa_tests::upstream::NodeIdp`, RS256, a new \
                     user per sign-in), closed loop: {} virtual users, {:.0} s warm-up, then {:.0} s measured.",
                    r.vus,
                    secs(r.warmup),
                    secs(r.measured)
                );
            }
            None => {
                let _ = writeln!(doc, "- Brokered sign-ins, oidc-provider upstream: skipped (`--skip-node`).");
            }
        }
        let (minted, mint_elapsed, _) = self.mint;
        let _ = writeln!(
            doc,
            "- Code exchanges, closed loop: {minted} codes minted through the SSO path by {} concurrent minters \
             ({:.0} codes/s), then exchanged by {} concurrent workers; the oldest code was {:.0} s old when the \
             last exchange ended (codes live 60 s).",
            a.code_workers,
            minted as f64 / secs(mint_elapsed).max(1e-9),
            a.code_workers,
            secs(self.ex.oldest_code_age)
        );
        let (ol, oe) = (self.open_logins, self.open_ex);
        let _ = writeln!(
            doc,
            "- Open loops, after all the closed loops, at {:.0} % of the closed loop's peak in the same run: {} \
             sign-ins scheduled at {:.0}/s ({:.0} s), then {} exchanges at {:.0}/s ({:.1} s, on codes minted just before in {:.1} s). An \
             operation starts at its scheduled time whether or not earlier ones have finished; its latency runs \
             from that scheduled time, so queueing in Federa or in the generator counts. Starts later than {} ms \
             behind schedule: {} sign-ins (at most {:.1} ms), {} exchanges (at most {:.1} ms).",
            a.open_fraction * 100.0,
            ol.offered,
            ol.rate,
            secs(ol.duration),
            oe.offered,
            oe.rate,
            secs(oe.duration),
            secs(self.open_mint.0),
            LATE_AFTER.as_millis(),
            ol.late,
            secs(ol.max_late) * 1000.0,
            oe.late,
            secs(oe.max_late) * 1000.0,
        );
        let worst = |r: &crate::open_loop::OpenLoopResult| {
            r.worst_by_second.iter().map(|ms| format!("{ms:.0}")).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(
            doc,
            "- Open-loop queueing: at most {} sign-ins and {} exchanges were in flight at once. The slowest \
             operation scheduled in each second of the schedule, ms: sign-ins {}; exchanges {}.",
            ol.max_in_flight,
            oe.max_in_flight,
            worst(ol),
            worst(oe)
        );
        let _ = writeln!(
            doc,
            "- A sign-in: GET Federa's authorization endpoint (client `app`, `kc_idp_hint`, a unique `login_hint`, \
             PKCE S256, state, nonce, scope `{SCOPE}`) → the upstream → Federa's `/broker/{{alias}}/endpoint` \
             (code exchange upstream, ID token validation, userinfo, user created) → 302 to the app with a code \
             (not requested) → POST the token endpoint (client_secret_basic, code_verifier) → 200 with an RS256 \
             ID token and RS256 JWT access token. Its latency runs from the first request to the token response; \
             logins/s counts the sign-ins that succeeded within the measured window."
        );
        let _ = writeln!(
            doc,
            "- Token check: one token response in {} (sign-ins and exchanges alike; {} in this run) is verified \
             by the harness with josekit, not with Federa's code: both tokens' RS256 signatures against the \
             realm's JWK Set (`/realms/bench/protocol/openid-connect/certs`; keys: {}), `typ`, `iss`, `aud` = \
             `app`, the ID token's `nonce` = the one sent, `exp`, `at_hash`, and the same `sub` in both. A \
             response that fails counts as a failed operation, and the harness exits with status 2.\n",
            self.check.every(),
            self.check.checked(),
            self.check.key_summary()
        );
    }

    pub(crate) fn cpu_text(&self, doc: &mut String) {
        let (b, a) = self.sig;
        let _ = writeln!(
            doc,
            "Federa's CPU time is `utime + stime` of its process (all threads) from `/proc/<pid>/stat`, in clock \
             ticks of 1/{} s, read at the start and the end of each measured window (closed loop: the measured \
             window after warm-up; open loop: from the first scheduled start until the last operation ended), \
             divided by the operations that succeeded in it. The same counters of the harness process (load \
             generator and fast upstream) and the machine's `/proc/stat` give the other columns.\n",
            clk_tck()
        );
        let _ = writeln!(
            doc,
            "The signature cost is measured by the harness in this run, on one thread of its own while Federa is \
             idle: the thread's CPU time (`/proc/thread-self/schedstat`) over {} RS256 signatures of a token's \
             signing input with josekit (OpenSSL), the library and call Federa signs with, and a fresh RSA-2048 \
             key made as Federa makes a realm's key. Before the load: {:.0} µs of CPU each ({:.0} µs of wall \
             time); after it: {:.0} µs ({:.0} µs wall); the table uses the mean. A whole token as Federa's \
             `TokenSigner::sign` makes it (claims serialised, base64url, signature) cost {:.0} µs and {:.0} µs.\n",
            b.n, b.cpu_us, b.wall_us, a.cpu_us, a.wall_us, b.token_cpu_us, a.token_cpu_us
        );
        let _ = writeln!(
            doc,
            "Signatures per operation, from the code: a code exchange signs exactly {SIGNATURES_PER_OP:.0} RS256 \
             tokens with the realm's key, the JWT access token (`typ` at+jwt) and then the ID token (with its \
             `at_hash`), in `sign_pair` (crates/broker/src/flow/token.rs). A full sign-in signs nothing else: its \
             authorization request and its callback make no signature (the callback *verifies* the upstream's \
             ES256 ID token, which counts in the part beyond the signatures), and its token request is one such \
             exchange. So CPU beyond the signatures = CPU per operation − {SIGNATURES_PER_OP:.0} × one signature.\n"
        );
    }

    pub(crate) fn generator_text(&self, doc: &mut String) {
        let _ = writeln!(doc, "## Load generator\n");
        let _ = writeln!(
            doc,
            "The generator is a tokio program in the same process as the fast upstream. Each closed-loop virtual \
             user keeps one `reqwest` client for its whole run (no cookie store, no automatic redirects), so its \
             keep-alive connections to Federa and to the upstream are reused from one sign-in to the next; the \
             open loops share 32 such clients round robin. No client is built per sign-in. Each sign-in has a \
             fresh, empty `reqwest::cookie::Jar` of its own, applied by hand: every request's `Cookie` header \
             comes from that jar and every response's `Set-Cookie` goes into it (paths, expiry and removal as a \
             browser keeps them), so Federa's `FEDERA_FLOW`/`FEDERA_SESSION` and oidc-provider's interaction and \
             session cookies never leak from one sign-in to the next. Redirects are followed by hand. Code minters \
             send the one signed-in user's `FEDERA_SESSION` cookie; exchangers send none.\n"
        );
    }
}
