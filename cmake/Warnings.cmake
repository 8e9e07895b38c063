# Warning flags and sanitizer options shared by every target of the project.
add_library(relaypro_build_flags INTERFACE)
target_compile_options(relaypro_build_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Woverloaded-virtual -Wformat=2 -Wimplicit-fallthrough
  -Wno-missing-field-initializers
  -fno-strict-aliasing -D_FILE_OFFSET_BITS=64 -D_GNU_SOURCE)
if(RELAYPRO_WERROR)
  target_compile_options(relaypro_build_flags INTERFACE -Werror)
endif()
# Hardening that costs nothing measurable on the data path.
target_compile_options(relaypro_build_flags INTERFACE -fstack-protector-strong -fPIE)
target_link_options(relaypro_build_flags INTERFACE -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack)
if(NOT RELAYPRO_SANITIZE AND NOT CMAKE_BUILD_TYPE STREQUAL "Debug")
  target_compile_definitions(relaypro_build_flags INTERFACE _FORTIFY_SOURCE=2)
endif()

if(RELAYPRO_SANITIZE)
  set(_san -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_compile_options(relaypro_build_flags INTERFACE ${_san})
  target_link_options(relaypro_build_flags INTERFACE ${_san})
  target_compile_definitions(relaypro_build_flags INTERFACE RELAYPRO_SANITIZE_BUILD=1)
endif()

# Fuzz builds (clang): coverage instrumentation and sanitizers on all project code; the
# fuzz targets themselves link the libFuzzer driver (test/fuzz/CMakeLists.txt).
if(RELAYPRO_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "RELAYPRO_FUZZ needs clang: -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++")
  endif()
  set(_fuzz -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_compile_options(relaypro_build_flags INTERFACE ${_fuzz})
  target_link_options(relaypro_build_flags INTERFACE -fsanitize=address,undefined)
endif()
