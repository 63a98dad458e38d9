#pragma once
// Header rules shared by everything that relays an origin's response (the external proxy,
// the function worker): hop-by-hop names, token syntax, value cleaning, and the response
// header order of spec 2.8.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nimbus::http::hdr {

using Headers = std::vector<std::pair<std::string, std::string>>;
using HeaderViews = std::vector<std::pair<std::string_view, std::string_view>>;

std::string lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
// Without leading and trailing spaces and tabs.
std::string_view trim(std::string_view s);
// An RFC 9110 token (a valid header name).
bool isToken(std::string_view s);
// Headers about one connection rather than the message (RFC 9110 7.6.1); never forwarded.
bool isHopByHop(std::string_view lowerName);
// Adds the lower-cased options of a `connection` header value: the headers it names are
// hop-by-hop too.
void addConnectionTokens(std::string_view value, std::vector<std::string>* out);
bool contains(const std::vector<std::string>& v, std::string_view s);
// Header values never carry line breaks or NUL; a routing transform must not split a head.
std::string cleanValue(std::string_view v);
void eraseHeader(Headers* h, std::string_view lowerName);

// The response headers sent to the client for an origin's response, in the order of spec
// 2.8: `route` headers first, the origin's replace them by name, `important` replace both;
// set-cookie always appends. Then every name in `deletes` is removed. Hop-by-hop and
// framing headers and the ones the server writes itself (date, server, x-nimbus-id) are
// dropped. Names come out lower-case.
Headers composeResponseHeaders(const HeaderViews& origin, const Headers& route,
                               const Headers& important, const std::vector<std::string>& deletes);

}  // namespace nimbus::http::hdr
