# cityloop_module(NAME PUBLIC_DEPS ... PRIVATE_DEPS ...)
# Makes the static library cityloop_NAME (alias cityloop::NAME) from every .cc
# directly in NAME/ and its subfolders, with the project root on the include path
# so headers are included as "NAME/header.h".
function(cityloop_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
    -Wimplicit-fallthrough)
  if(CITYLOOP_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

function(cityloop_target_sanitizers target)
  if(CITYLOOP_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
      -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

function(cityloop_module name)
  cmake_parse_arguments(M "" "" "PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/${name}/*.cc)
  list(FILTER sources EXCLUDE REGEX "/${name}/main/")
  if(NOT sources)
    set(stub ${CMAKE_BINARY_DIR}/generated/${name}_module.cc)
    file(WRITE ${stub} "// ${name}: no sources yet\n")
    set(sources ${stub})
  endif()
  add_library(cityloop_${name} STATIC ${sources})
  add_library(cityloop::${name} ALIAS cityloop_${name})
  target_include_directories(cityloop_${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(cityloop_${name} PUBLIC ${M_PUBLIC_DEPS} PRIVATE ${M_PRIVATE_DEPS})
  cityloop_target_warnings(cityloop_${name})
  cityloop_target_sanitizers(cityloop_${name})
  if(CITYLOOP_SANITIZE)
    target_link_options(cityloop_${name} PUBLIC -fsanitize=address,undefined)
  endif()
endfunction()

# cityloop_test(NAME SOURCES... DEPS ...): one GoogleTest binary registered with CTest.
function(cityloop_test name)
  cmake_parse_arguments(T "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_DEPS} GTest::gtest GTest::gtest_main GTest::gmock Threads::Threads)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  cityloop_target_warnings(${name})
  cityloop_target_sanitizers(${name})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${T_LABELS}")
endfunction()
