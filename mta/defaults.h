// Every default value stokend uses, in one place.
//
// The config loader (mta/config/) starts from these; nothing else in the tree
// hard-codes a limit, timeout or path. Changing a default here changes it
// everywhere, and etc/stokend.yaml documents the same values.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace stokend {

// Which outgoing mail carries Submission-Token headers: chat mail only, all
// mail of local users, or none. (Declared here so its default can be.)
enum class TokenDistribution { chat, all, off };

// What a NUL octet in message content (DATA or BDAT) gets: the message is
// refused, or the NUL is removed. (Declared here so its default can be.)
enum class NulOctets { reject, strip };

// Where logins and local users are looked up: the users file, or a
// provider's Dovecot (auth: backend). (Declared here so its default can be.)
enum class AuthBackend { users_file, dovecot };
// How the fast lane talks to a Token Server (rfcdraft/ §7, §10, Appendix
// D): LHLO and AUTH STOKEN (the draft's form), EHLO and MAIL ... SYNC
// (Dovecot's COI plugin), or automatic: LHLO first, the EHLO form when a
// server refuses LHLO and announces STOKEN after EHLO.
enum class TokenDialect { automatic, lhlo, ehlo_sync };

}  // namespace stokend

namespace stokend::defaults {

using namespace std::chrono_literals;

// Identity
inline constexpr const char* hostname = "";  // empty: use gethostname()

// Paths (relative paths resolve against the working directory)
inline constexpr const char* users_file = "var/users";
inline constexpr const char* spool_directory = "var/spool";
inline constexpr const char* maildir_root = "var/mail";
inline constexpr const char* generated_tls_directory = "var/tls";
// The local control socket stokenctl uses to reach the running daemon.
inline constexpr const char* control_socket = "var/stokend.sock";

// Socket I/O: the most one read or write on a connection moves. libevent's
// own limit is 16 KiB, which split a 100 KB message into at least seven
// reads on the way in and seven writes on the way out, each a trip through
// the event loop. Below the session's 256 KiB read backpressure mark; an
// idle connection holds no buffer, so this costs memory only while data flows.
inline constexpr std::size_t socket_io_chunk = 128 * 1024;

// Limits
inline constexpr std::size_t max_message_size = 35 * 1024 * 1024;  // bytes, advertised in SIZE
inline constexpr std::size_t max_line_length = 1000;  // octets incl. CRLF, RFC 5321 §4.5.3.1.6
// Command lines of a token session (after LHLO, or in a SYNC transaction):
// RCPT with STOKEN= and MYSTOKEN= of up to 512 octets each (tokens/
// token_format.h) and a 256-octet address needs about 1,600 (RFC 5321
// §4.5.3.1.4 lets an extension raise the command line limit).
inline constexpr std::size_t token_command_line_length = 2048;
inline constexpr std::size_t max_recipients = 100;  // per message, RFC 5321 §4.5.3.1.8
// Received fields a message may carry before it counts as looping (RFC 5321
// §6.3: "normally at least 100"; Postfix's hopcount_limit is 50).
inline constexpr std::size_t max_hops = 100;
// Address rewriting (mta/addresses/). recipient_delimiter: the characters
// that start an address extension (alice+news@ is alice's); empty: none,
// as Postfix's recipient_delimiter. The aliases map's recursion and fan-out
// are bounded (Postfix: virtual_alias_recursion_limit and
// virtual_alias_expansion_limit, both 1000; a deeper chain than 16 is a
// mistake, not a design), and so is the file it is read from.
inline constexpr const char* recipient_delimiter = "";
inline constexpr std::size_t alias_max_depth = 16;
inline constexpr std::size_t alias_max_recipients = 1000;               // final addresses per RCPT
inline constexpr std::size_t aliases_file_max_size = 16 * 1024 * 1024;  // bytes
inline constexpr std::size_t aliases_line_max_length = 64 * 1024;  // octets, continuations joined
inline constexpr std::size_t max_connections = 2000;
inline constexpr std::size_t max_connections_per_ip = 50;
inline constexpr std::size_t error_limit = 10;  // protocol errors before 421 and close
inline constexpr std::size_t max_auth_failures = 3;
// An AUTH command line and each SASL response line, in octets with CRLF:
// RFC 4954 §4 names 12288 as enough for the deployed mechanisms; a longer
// line gets 500 5.5.6.
inline constexpr std::size_t auth_line_length = 12288;

// Timeouts (RFC 5321 §4.5.3.2 suggests 5 minutes for commands, 10 for DATA)
inline constexpr auto idle_timeout = 300s;     // waiting for the next command
inline constexpr auto command_timeout = 300s;  // one command line, once started
inline constexpr auto data_timeout = 600s;     // the whole DATA or BDAT transfer
inline constexpr auto tls_handshake_timeout = 30s;
// A load balancer sends its PROXY header at once (Postfix's
// smtpd_upstream_proxy_timeout is 5s too).
inline constexpr auto proxy_header_timeout = 5s;
inline constexpr auto auth_failure_base_delay = 1s;  // doubled on each further failure
inline constexpr auto auth_failure_max_delay = 16s;

// DNS (dns/): how long one query may take before it counts as a temporary failure
inline constexpr auto dns_timeout = 5s;

// Outbound SMTP: the port of MX hosts (RFC 5321 §4.5.4.2 and the MX record
// name port 25; tests point it at a high loopback port).
inline constexpr std::uint16_t mx_port = 25;
// Outbound TLS (mta/tls_policies.h) for domains without an entry in
// tls_policies and without "*": opportunistic, Postfix's "may" (RFC 7435).
inline constexpr const char* tls_policy = "may";
// Trust anchors for the "verify" policy; empty: the system CA store.
inline constexpr const char* tls_policy_ca_file = "";
// SASL credentials for smarthost routes (mta/relay_credentials.h); empty:
// no next hop gets AUTH.
inline constexpr const char* relay_credentials = "";

// The queue's retry schedule and concurrency: queue/queue_defaults.h.

// Submission tokens (tokens/). The token store and the secrets file live in
// spool_directory unless the tokens section names other paths.
inline constexpr const char* token_store_file_name = "tokens.db";
inline constexpr const char* token_secrets_file_name = "token-secrets";
inline constexpr std::chrono::seconds token_temporary_validity = 7 * 24h;    // draft: one week
inline constexpr std::chrono::seconds token_permanent_validity = 365 * 24h;  // one year
// How far in the future a token's created time may be (another node's clock).
inline constexpr std::chrono::seconds token_clock_skew = 24h;
// A permanent token used with less than this left is renewed (2.1.13).
inline constexpr std::chrono::seconds token_renew_before = 30 * 24h;
// Inbound Submission-Token fields are removed once harvested into the wallet.
inline constexpr bool remove_submission_token_headers = true;
// Each Maildir user's COI/Contacts folder mirrors their tokens (COI contact
// storage messages), so that the user's COI clients see them.
inline constexpr bool sync_contacts_folder = true;
// How often expired tokens and useless revocation marks leave the token store.
inline constexpr std::chrono::seconds token_store_cleanup_interval = 1h;
// The token store on Redis (tokens.store.backend: redis), shared by several
// nodes. Deadlines: a Token Server answers 451 4.3.0 rather than wait longer
// for Redis (tokens/redis_connection.h).
inline constexpr std::chrono::milliseconds redis_connect_timeout = 1000ms;
inline constexpr std::chrono::milliseconds redis_command_timeout = 1000ms;
// WAIT for this many replicas after each write (0: the primary's AOF only).
inline constexpr unsigned redis_wait_replicas = 0;
inline constexpr std::chrono::milliseconds redis_wait_timeout = 1000ms;
// Every key stokend writes starts with this (tokens/redis_token_store.h).
inline constexpr const char* redis_key_prefix = "stokend:";
// The daemon caches what verification reads from Redis and hears of every
// change over pub/sub (tokens/redis_invalidations.h): a PING on that
// connection this often, and the cache is bypassed after this long without
// a word from Redis (the bound on a revocation missed by a node cut off
// without its connection dropping).
inline constexpr bool redis_verification_cache = true;
inline constexpr std::chrono::milliseconds redis_cache_ping_interval = 200ms;
inline constexpr std::chrono::milliseconds redis_cache_silence_limit = 1000ms;

// The built-in Maildir store: a file a crash left in a tmp/ folder (written,
// never renamed into new/) is removed once its mtime is this old, the Maildir
// convention Dovecot follows; no delivery takes anywhere near as long. The
// daemon's own delivery files go at start whatever their age
// (mta/store/maildir_cleanup.h); this rule is for everyone else's.
inline constexpr std::chrono::seconds maildir_tmp_max_age = 36h;
inline constexpr std::chrono::seconds maildir_cleanup_interval = 24h;
// Modes of the files and folders the built-in Maildir store creates: only
// the daemon's user reads mail unless maildir.group/modes share it.
inline constexpr unsigned maildir_file_mode = 0600;
inline constexpr unsigned maildir_directory_mode = 0700;

// Privileges: a daemon started as root without `user:` refuses to run
// unless allow_root is true (daemon/privileges.h).
inline constexpr bool allow_root = false;

// The fast lane (Remote Client): delivery of local users' mail straight to
// the recipient's Token Server when the wallet holds a token.
inline constexpr bool fast_lane_enabled = true;
inline constexpr const char* fast_lane_ca_file = "";  // empty: the system CA store
// Without an SRV record, try the domain's MX hosts on this port (implicit
// TLS, RFC 8314) instead. Off by default: an MX host rarely runs a Token
// Server, and the attempt costs a connection before falling back.
inline constexpr bool fast_lane_mx_fallback = false;
inline constexpr std::uint16_t fast_lane_mx_fallback_port = 465;
// One fast-lane attempt, every step included; on expiry the recipients fall
// back to the queue. Short: a Token Server answers in milliseconds, and a
// slow one must not hold chat mail back from its MX path for long.
inline constexpr std::chrono::milliseconds fast_lane_timeout = 30s;
// An authenticated connection to a Token Server is kept open this long for
// the next message (a new TLS session costs a few milliseconds).
inline constexpr std::chrono::milliseconds fast_lane_idle_timeout = 5min;
// The dialect for every domain without its own fast_lane.dialects entry.
inline constexpr TokenDialect fast_lane_dialect = TokenDialect::automatic;
// How many Token Servers' learnt dialects (automatic) are remembered; past
// that the memory starts over (one refused LHLO each costs a connection).
inline constexpr std::size_t fast_lane_learnt_dialects = 4096;
// Which outgoing mail of local users gets a Submission-Token header per
// remote recipient (DESIGN.md: chat mail).
inline constexpr TokenDistribution distribute_tokens = TokenDistribution::chat;

// Recipient verification at the next hop (recipient_probe): how long an
// answer is believed. Postfix keeps its verify answers for days; a shorter
// time notices a mailbox created or deleted behind stokend the same day.
inline constexpr std::chrono::milliseconds recipient_probe_positive_ttl = 1h;
inline constexpr std::chrono::milliseconds recipient_probe_negative_ttl = 10min;
inline constexpr std::size_t recipient_probe_cache_entries = 100000;

// Authentication and user lookup (auth:): the users file, or a provider's
// Dovecot (mta/auth/). A Dovecot answer is awaited this long per request;
// then AUTH gets 454 4.7.0 and RCPT 451 4.3.0 (never an acceptance).
inline constexpr AuthBackend auth_backend = AuthBackend::users_file;
inline constexpr std::chrono::milliseconds dovecot_timeout = 5s;
// How long a userdb answer (user exists or not) is believed; 0: ask each time.
inline constexpr std::chrono::milliseconds dovecot_cache_ttl = 60s;
inline constexpr std::size_t dovecot_cache_entries = 10000;
// Reconnecting to Dovecot after a failure: the wait doubles from the first
// to the last value; a request meanwhile waits for the next attempt (within
// its timeout) and fails temporarily if that attempt fails too.
inline constexpr std::chrono::milliseconds dovecot_reconnect_min = 250ms;
inline constexpr std::chrono::milliseconds dovecot_reconnect_max = 5s;
// A line from Dovecot longer than this ends the connection (a protocol
// error); Dovecot's own lines (a SASL challenge, a userdb reply) stay far below.
inline constexpr std::size_t dovecot_max_line_length = 65536;
// Requests waiting for Dovecot at once; more get a temporary failure.
inline constexpr std::size_t dovecot_max_pending = 10000;

// Input handling
inline constexpr bool normalise_bare_line_endings = false;  // false: reject with 5.5.2
// NUL in DATA / BDAT content: reject with 554 5.6.0 (RFC 5322 §3.5, RFC 2045
// §2.7-2.8: no NUL without BINARYMIME), or strip.
inline constexpr NulOctets nul_octets = NulOctets::reject;

// Worker threads for blocking work (password hashing, fsync)
inline constexpr unsigned worker_threads = 4;

// Logging
inline constexpr const char* log_level = "info";
// log_syslog: lines to the system logger (facility mail), as Postfix's are.
inline constexpr bool log_syslog = false;
inline constexpr const char* log_syslog_socket = "/dev/log";
// A syslog daemon that stops reading holds a line up this long at most; the
// line is then dropped rather than the event loop stalled.
inline constexpr std::chrono::milliseconds syslog_send_timeout{1000};
// Longer lines are cut to this many octets (RFC 5424 §6.1 lets a receiver
// refuse more than 2048; journald and rsyslog take 8 KiB).
inline constexpr std::size_t syslog_max_line = 8192;

// The metrics endpoint (GET /metrics, GET /healthz): off unless the
// configuration names an address and port. One request per connection;
// a scraper needs one connection at a time, a few monitors a few more.
inline constexpr const char* metrics_listen = "";  // empty: off
inline constexpr std::size_t metrics_max_connections = 16;
// The whole exchange, from connect to the last byte of the answer: a
// scrape answers in milliseconds, and a client that trickles its request
// gives its slot back this soon.
inline constexpr std::chrono::milliseconds metrics_timeout = 10s;
// The request line and headers; a scraper's take a few hundred octets.
inline constexpr std::size_t metrics_max_request_size = 8192;

// Milters (mta/milter/): Postfix's milter_connect_timeout is 30s and
// milter_command_timeout 30s; a milter on the same host answers in
// milliseconds, so shorter deadlines keep a session from waiting long on
// one that hangs.
inline constexpr std::chrono::milliseconds milter_connect_timeout = 10s;
inline constexpr std::chrono::milliseconds milter_command_timeout = 30s;
// A milter reply packet larger than this is garbage (a body replacement
// comes in chunks of at most 64 KiB, MILTER_CHUNK_SIZE).
inline constexpr std::size_t milter_max_reply_size = 1024 * 1024;
// Body chunks sent to a milter (SMFIC_BODY), as Postfix and Sendmail do.
inline constexpr std::size_t milter_body_chunk_size = 65535;

}  // namespace stokend::defaults
