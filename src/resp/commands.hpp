/*
 * commands.hpp
 *
 * The command table of FastPgCache's Redis front (names, arity, flags, key
 * positions, ACL categories, tips, key specs and short docs: what COMMAND
 * COUNT/INFO/DOCS return, so that redis-py, go-redis, Jedis, ioredis and
 * redis-cli work), and the parsing of argv into typed requests with Redis
 * 7.0's exact error replies. Pure C++, no PostgreSQL header.
 *
 * A request's string_views point into the argv it was parsed from: they live as
 * long as that argv (for the server: until the command's reply is written).
 *
 * Redis quirks kept on purpose (clients can observe them): options compare like
 * strcasecmp() on C strings, so an option argument ends at its first NUL byte
 * ("NX\0junk" is NX); error texts that quote an argument stop at its NUL byte
 * and show CR/LF as spaces.
 */
#ifndef FASTPGCACHE_RESP_COMMANDS_HPP
#define FASTPGCACHE_RESP_COMMANDS_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "protocol.hpp"

namespace fastpgcache::resp {

enum class CommandId : uint8_t {
  /* data commands: run by the Executor */
  kGet, kSet, kSetNx, kSetEx, kPSetEx, kMGet, kMSet, kMSetNx, kDel, kUnlink, kExists,
  kTtl, kPTtl, kExpire, kPExpire, kExpireAt, kPExpireAt, kPersist, kIncr, kIncrBy,
  kDecr, kDecrBy, kIncrByFloat, kAppend, kStrLen, kGetDel, kGetEx, kGetSet, kType,
  kKeys, kScan, kDbSize, kFlushDb, kFlushAll, kInfo, kAuth,
  /* connection commands: handled by the server */
  kPing, kEcho, kSelect, kHello, kQuit, kReset, kMulti, kExec, kDiscard, kWatch, kUnwatch,
  kClient, kClientId, kClientGetName, kClientSetName, kClientInfo, kClientList, kClientSetInfo,
  kCommand, kCommandCount, kCommandDocs, kCommandInfo, kCommandList,
  kConfig, kConfigGet,
};

/* Flags reported by COMMAND INFO (Redis names in comments), plus ours. */
enum CommandFlag : uint32_t {
  kFlagWrite = 1u << 0,        /* write */
  kFlagReadOnly = 1u << 1,     /* readonly */
  kFlagDenyOom = 1u << 2,      /* denyoom */
  kFlagAdmin = 1u << 3,        /* admin */
  kFlagNoScript = 1u << 4,     /* noscript */
  kFlagLoading = 1u << 5,      /* loading */
  kFlagStale = 1u << 6,        /* stale */
  kFlagSkipSlowlog = 1u << 7,  /* skip_slowlog */
  kFlagFast = 1u << 8,         /* fast */
  kFlagNoAuth = 1u << 9,       /* no_auth: allowed before AUTH */
  kFlagAllowBusy = 1u << 10,   /* allow_busy */
  kFlagExecutor = 1u << 16,    /* ours: runs in the Executor */
  kFlagNoMulti = 1u << 17,     /* ours: refused inside MULTI by this server */
};

struct CommandSpec {
  const char* name;            /* lower case; subcommands "client|setname" */
  CommandId id;
  int arity;                   /* >0 exact argc, <0 at least -arity */
  uint32_t flags;
  int first_key, last_key, key_step;
  const char* acl_categories;  /* "@write @string @slow" */
  const char* tips;            /* space separated, may be empty */
  const char* key_spec_flags;  /* "RW access update", nullptr: no key spec */
  const char* key_spec_notes;  /* nullptr: none */
  const char* summary;
  const char* since;
  const char* group;
  const char* complexity;
  const CommandSpec* subcommands;
  size_t subcommand_count;
};

/* Every top-level command, in table order. */
const CommandSpec* CommandTable(size_t* count) noexcept;

/* Finds a top-level command by name (case-insensitive, exact length). */
const CommandSpec* FindCommand(std::string_view name) noexcept;

/* Finds a command by full name ("get", "client|setname"), case-insensitive. */
const CommandSpec* FindCommandByFullName(std::string_view fullname) noexcept;

/*
 * Resolves argv to a command as Redis's processCommand() does: unknown command
 * (error "ERR unknown command '...', with args beginning with: ..."), unknown
 * subcommand of a container command ("ERR unknown subcommand '...'. Try CLIENT
 * HELP."), then the arity check ("ERR wrong number of arguments for 'get'
 * command"). On failure returns nullptr and sets *error (with its "ERR" code).
 */
const CommandSpec* ResolveCommand(const std::vector<std::string_view>& argv, std::string* error);

/* The error Redis gives for a wrong argument count of `spec`. */
std::string ArityError(const CommandSpec& spec);

/* ---- typed requests of the data commands ---- */

/* How a SET/GETEX request sets the expiry. */
enum class ExpiryMode : uint8_t { kNone, kEx, kPx, kExAt, kPxAt, kKeepTtl, kPersist };

struct KeyRequest {            /* GET GETDEL TTL PTTL PERSIST STRLEN TYPE */
  std::string_view key;
};
struct MultiKeyRequest {       /* MGET DEL UNLINK EXISTS (a key listed twice counts twice) */
  std::vector<std::string_view> keys;
};
struct KeyValueRequest {       /* APPEND GETSET */
  std::string_view key;
  std::string_view value;
};
struct IncrRequest {           /* INCR (+1) DECR (-1) INCRBY (n) DECRBY (-n) */
  std::string_view key;
  int64_t delta = 0;
};
struct IncrByFloatRequest {    /* INCRBYFLOAT; reply with FormatLongDoubleHuman() */
  std::string_view key;
  long double delta = 0;
};
struct SetRequest {            /* SET SETNX (nx) SETEX (ex) PSETEX (px) */
  std::string_view key;
  std::string_view value;
  ExpiryMode expiry = ExpiryMode::kNone;  /* kNone, kEx, kPx, kExAt, kPxAt or kKeepTtl */
  int64_t expire_at_ms = 0;    /* absolute unix time in ms when expiry is EX/PX/EXAT/PXAT */
  bool nx = false;
  bool xx = false;
  bool get = false;            /* SET ... GET: reply with the old value */
};
struct MSetRequest {           /* MSET MSETNX (nx) */
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  bool nx = false;
};
struct ExpireRequest {         /* EXPIRE PEXPIRE EXPIREAT PEXPIREAT */
  std::string_view key;
  int64_t expire_at_ms = 0;    /* absolute; <= now means: delete the key (Redis) */
  /* Redis 7 conditions; XX may combine with GT or LT (both must hold). A key
   * without TTL counts as an infinite TTL for GT/LT. */
  bool nx = false, xx = false, gt = false, lt = false;
};
struct GetExRequest {          /* GETEX */
  std::string_view key;
  ExpiryMode expiry = ExpiryMode::kNone;  /* kNone, kEx, kPx, kExAt, kPxAt or kPersist */
  int64_t expire_at_ms = 0;
  /* Redis checks GETEX's expire time only when the key exists: if this is not
   * empty and the key exists, reply with this error (missing key: null). */
  std::string deferred_error;
};
struct KeysRequest {           /* KEYS */
  std::string_view pattern;
};
struct ScanRequest {           /* SCAN cursor [MATCH p] [COUNT n] [TYPE t] */
  uint64_t cursor = 0;
  bool has_pattern = false;    /* false also for MATCH "*" (Redis: matches all) */
  std::string_view pattern;
  int64_t count = 10;
  bool has_type = false;
  std::string_view type;
};
struct FlushRequest {          /* FLUSHDB FLUSHALL [ASYNC|SYNC] */
  bool async = false;
};
struct NoArgsRequest {};       /* DBSIZE */
struct InfoRequest {           /* INFO [section ...] */
  std::string server_text;     /* sections rendered by the server ("# Server\r\n...") */
  bool keyspace = false;       /* the executor appends "# Keyspace\r\ndb0:keys=...\r\n" */
};
struct AuthRequest {           /* AUTH [user] password, HELLO ... AUTH user password */
  std::string_view username;   /* "default" when AUTH got only a password */
  std::string_view password;
  /* AUTH <password> (no user): where no password is set, Redis answers "ERR
   * AUTH <password> called without any password configured for the default
   * user. Are you sure your configuration is correct?" */
  bool password_only = false;
};

using RequestArgs = std::variant<KeyRequest, MultiKeyRequest, KeyValueRequest, IncrRequest,
                                 IncrByFloatRequest, SetRequest, MSetRequest, ExpireRequest,
                                 GetExRequest, KeysRequest, ScanRequest, FlushRequest,
                                 NoArgsRequest, InfoRequest, AuthRequest>;

struct Request {
  const CommandSpec* spec = nullptr;
  CommandId id = CommandId::kGet;
  RequestArgs args;
};

/*
 * Parses the arguments of a data command (spec has kFlagExecutor; arity already
 * checked by ResolveCommand). now_ms is the unix time in ms that relative
 * expiries are based on (the executor must use the same clock reading). On a
 * Redis argument error returns false and sets *error (e.g. "ERR syntax error").
 */
bool ParseRequest(const CommandSpec& spec, const std::vector<std::string_view>& argv,
                  int64_t now_ms, Request* out, std::string* error);

/* ---- connection-command helpers (used by the server) ---- */

struct HelloRequest {
  int64_t protocol = 0;        /* 0: keep the current one */
  bool has_auth = false;
  std::string_view username;
  std::string_view password;
  bool has_setname = false;
  std::string_view name;
};

/* Parses HELLO's arguments with Redis's errors. */
bool ParseHello(const std::vector<std::string_view>& argv, HelloRequest* out, std::string* error);

/* CLIENT SETNAME / HELLO SETNAME: bytes '!'..'~' only (empty clears). */
bool ValidateClientName(std::string_view name, std::string* error);

/* The argument as C code sees it: up to its first NUL byte. */
std::string_view CStr(std::string_view arg) noexcept;

/* strcasecmp(CStr(arg), lower) == 0 */
bool OptionIs(std::string_view arg, const char* lower) noexcept;

/* INFO's reply for an executor: the server's sections, then, if the request
 * asks for it, "# Keyspace" with "db0:keys=<keys>,expires=<expires>,avg_ttl=0"
 * (no db0 line when keys is 0, as Redis). A verbatim string in RESP3. */
void WriteInfoReply(ReplyWriter& w, const InfoRequest& info, int64_t keys, int64_t expires);

/* COMMAND INFO / COMMAND DOCS entries as Redis 7.0 writes them. */
void WriteCommandInfo(ReplyWriter& w, const CommandSpec* spec);
void WriteCommandDocs(ReplyWriter& w, const CommandSpec& spec);

}  // namespace fastpgcache::resp

#endif
