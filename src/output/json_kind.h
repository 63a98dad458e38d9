#pragma once
// "a string", "an array", ...: how error messages name the JSON type a value has.
#include <boost/json/value.hpp>

namespace nimbus::output {

const char* jsonKindName(const boost::json::value& v);

}  // namespace nimbus::output
