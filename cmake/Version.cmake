# Generates version.h at build time so `relaypro version` always carries the current
# `git describe`, while the semver comes from project(VERSION) alone.
set(RELAYPRO_GENERATED_DIR ${CMAKE_BINARY_DIR}/generated)
add_custom_target(relaypro_version_header
  COMMAND ${CMAKE_COMMAND}
          -DSOURCE_DIR=${CMAKE_SOURCE_DIR}
          -DOUTPUT=${RELAYPRO_GENERATED_DIR}/relaypro_version.h
          -DSEMVER=${PROJECT_VERSION}
          -P ${CMAKE_SOURCE_DIR}/cmake/WriteVersion.cmake
  BYPRODUCTS ${RELAYPRO_GENERATED_DIR}/relaypro_version.h
  COMMENT "Checking version header")
