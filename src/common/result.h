#pragma once
// Result<T>: the value of an operation that can fail in an expected way (bad input, missing
// file, store conflict). Errors carry a human message that says what we were doing, on which
// value, and how to fix it; each layer may prefix its own context with `context()`.
#include <string>
#include <utility>
#include <variant>

#include "common/check.h"

namespace nimbus {

// Broad error kinds so callers (HTTP handlers especially) can map an error to a status.
enum class ErrorKind { Invalid, NotFound, Conflict, Unauthorized, TooLarge, Io, Internal };

struct Error {
  ErrorKind kind = ErrorKind::Internal;
  std::string message;

  // Returns a copy whose message is "<what>: <message>".
  Error context(std::string_view what) const {
    return Error{kind, std::string(what) + ": " + message};
  }
};

inline Error makeError(ErrorKind kind, std::string message) { return Error{kind, std::move(message)}; }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { NIMBUS_CHECK(ok()); return std::get<0>(v_); }
  const T& value() const& { NIMBUS_CHECK(ok()); return std::get<0>(v_); }
  T&& value() && { NIMBUS_CHECK(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { NIMBUS_CHECK(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { NIMBUS_CHECK(failed_); return error_; }

 private:
  Error error_;
  bool failed_ = false;
};

inline Result<void> success() { return {}; }

}  // namespace nimbus
