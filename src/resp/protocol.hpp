/*
 * protocol.hpp
 *
 * The Redis wire protocol, pure C++ (no PostgreSQL header): an incremental
 * request parser for RESP multibulk requests and Redis "inline" commands,
 * a reply writer for RESP2 and RESP3, and the number parsing/formatting
 * helpers whose exact behaviour Redis clients observe (string2ll, string2ld,
 * %.17g doubles, INCRBYFLOAT's human formatting).
 *
 * The parser follows redis-server 7.0 (src/networking.c processMultibulkBuffer
 * and processInlineBuffer): same limits, same error texts, same quirks where
 * they are observable (a header line ends at the first '\r', and the byte after
 * it is skipped unchecked; the two bytes after a bulk are skipped unchecked; a
 * NUL byte in a header or inline line hides the line end). Deliberate
 * differences, chosen so that a request parses the same however TCP splits it:
 *   - an inline line longer than the inline limit (64 KB) is always refused
 *     ("too big inline request"); Redis accepts one when its newline happens to
 *     arrive in the same read.
 *   - a "*" or "$" header line longer than the inline limit is always refused
 *     with "too big mbulk count string" / "too big bulk count string"; Redis
 *     answers "invalid multibulk/bulk length" when the whole line arrived at once.
 */
#ifndef FASTPGCACHE_RESP_PROTOCOL_HPP
#define FASTPGCACHE_RESP_PROTOCOL_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fastpgcache::resp {

/* Limits applied while parsing requests (Redis's defaults). */
struct ParserLimits {
  int64_t max_bulk_len = 512LL * 1024 * 1024;   /* proto-max-bulk-len */
  int64_t max_multibulk_len = 2147483647;       /* Redis 7.0: INT_MAX */
  size_t max_inline_len = 64 * 1024;            /* PROTO_INLINE_MAX_SIZE */
  int64_t unauth_max_multibulk_len = 10;        /* before AUTH (CVE-2021-32675) */
  int64_t unauth_max_bulk_len = 16384;
};

enum class ParseStatus {
  kNeedMore, /* the request is incomplete: append bytes and call again */
  kCommand,  /* a request was parsed: argv is filled, *consumed bytes used */
  kEmpty,    /* an empty request (blank line, "*0"): *consumed bytes skipped */
  kError     /* protocol error: reply "-ERR <error>" and close the connection */
};

/*
 * RequestParser: parses one request at a time from a byte window that starts
 * at the first unconsumed byte. After kNeedMore the caller appends data and
 * calls again with a window that starts at the same byte (the parser remembers
 * how far it got, so a slow client costs no rescans). After kCommand/kEmpty the
 * caller drops *consumed bytes. Multibulk arguments are views into the window
 * (zero copy); inline arguments (which may be unescaped) are views into the
 * parser's scratch storage. Views stay valid until the next Parse() call or the
 * next change to the window's memory.
 */
class RequestParser {
 public:
  explicit RequestParser(const ParserLimits& limits = ParserLimits()) noexcept;

  ParseStatus Parse(std::string_view input, bool auth_required,
                    std::vector<std::string_view>* argv, size_t* consumed,
                    std::string* error);

  /* Forgets any partial request. */
  void Reset() noexcept;

  /* Bytes the window must hold for the pending bulk to complete (0: unknown). */
  size_t PendingBulkEnd() const noexcept;

  const ParserLimits& limits() const noexcept { return limits_; }

 private:
  ParseStatus ParseInline(std::string_view input, std::vector<std::string_view>* argv,
                          size_t* consumed, std::string* error);
  ParseStatus ParseMultibulk(std::string_view input, bool auth_required,
                             std::vector<std::string_view>* argv, size_t* consumed,
                             std::string* error);

  ParserLimits limits_;
  enum class Kind { kUnknown, kInline, kMultibulk } kind_ = Kind::kUnknown;
  int64_t multibulk_remaining_ = 0;  /* arguments still to read; 0: header not read */
  int64_t bulk_len_ = -1;            /* length of the bulk being read; -1: header not read */
  size_t pos_ = 0;                   /* next unparsed byte of the window */
  size_t scan_pos_ = 0;              /* where to resume looking for a line end */
  std::vector<std::pair<size_t, size_t>> args_;  /* offset, length in the window */
  std::vector<std::string> inline_args_;
};

/* Splits an inline command line like Redis's sdssplitargs(): blanks separate
 * arguments, "double quotes" understand \n \r \t \b \a \xHH and \<c>, 'single
 * quotes' understand \'. Returns false on unbalanced quotes or a closing quote
 * followed by a non-blank. The line ends at its first NUL byte. */
bool SplitInlineArgs(std::string_view line, std::vector<std::string>* out);

/* Redis string2ll(): a strict decimal 64-bit integer (no '+', no leading zero,
 * no blanks, at most 20 characters). */
bool ParseLongLong(std::string_view s, int64_t* value) noexcept;

/* Redis string2ld(): strtold over the whole string, no leading blank, no NaN,
 * no overflow. */
bool ParseLongDouble(std::string_view s, long double* value) noexcept;

/* "%.17g" as Redis 7.0 replies doubles ("inf"/"-inf" for infinities). */
std::string FormatDouble(double value);

/* Redis ld2string(LD_STR_HUMAN): "%.17Lf" without trailing zeros, "-0" as
 * "0"; the format of INCRBYFLOAT results. Empty if longer than Redis allows. */
std::string FormatLongDoubleHuman(long double value);

/* Appends the decimal form of v. */
void AppendInteger(std::string* out, int64_t v);

/*
 * ReplyWriter: appends RESP replies to a string, in the protocol version of the
 * client (2 or 3). In RESP2, maps are flat arrays, sets are arrays, doubles are
 * bulk strings, booleans are integers, nulls are $-1 (or *-1 for a null
 * array) and verbatim strings are bulk strings.
 */
class ReplyWriter {
 public:
  ReplyWriter(std::string* out, int protocol) noexcept : out_(out), protocol_(protocol) {}

  void Simple(std::string_view s);   /* +s (CR/LF mapped to spaces) */
  void Error(std::string_view s);    /* -s: s holds the code, e.g. "ERR syntax error" */
  void Integer(int64_t v);
  void Bulk(std::string_view s);
  void Null();                       /* null bulk string */
  void NullArray();                  /* null array (EXEC aborted by WATCH, ...) */
  void Array(size_t n);
  void Map(size_t n);                /* n key/value pairs follow */
  void Set(size_t n);
  void Double(double d);
  void Boolean(bool b);
  void Verbatim(std::string_view s, std::string_view format = "txt");
  void Raw(std::string_view encoded) { out_->append(encoded); }

  int protocol() const noexcept { return protocol_; }
  std::string* out() const noexcept { return out_; }

 private:
  void Header(char type, int64_t n);
  std::string* out_;
  int protocol_;
};

}  // namespace fastpgcache::resp

#endif
