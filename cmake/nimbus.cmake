# nimbus_library(<name> SOURCES ... DEPS ...): one static library per subsystem.
function(nimbus_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(nimbus_${name} STATIC ${ARG_SOURCES})
  target_include_directories(nimbus_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_definitions(nimbus_${name} PUBLIC
    BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW)
  target_link_libraries(nimbus_${name} PUBLIC ${ARG_DEPS})
endfunction()

# nimbus_test(<name> SOURCES ... DEPS ...): a GoogleTest binary registered with CTest.
function(nimbus_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  include(GoogleTest)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS unit)
endfunction()
