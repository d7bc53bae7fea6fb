find_package(PkgConfig)

PKG_CHECK_MODULES(PC_GR_DRIFT gnuradio-drift)

FIND_PATH(
    GR_DRIFT_INCLUDE_DIRS
    NAMES gnuradio/drift/api.h
    HINTS $ENV{DRIFT_DIR}/include
        ${PC_DRIFT_INCLUDEDIR}
    PATHS ${CMAKE_INSTALL_PREFIX}/include
          /usr/local/include
          /usr/include
)

FIND_LIBRARY(
    GR_DRIFT_LIBRARIES
    NAMES gnuradio-drift
    HINTS $ENV{DRIFT_DIR}/lib
        ${PC_DRIFT_LIBDIR}
    PATHS ${CMAKE_INSTALL_PREFIX}/lib
          ${CMAKE_INSTALL_PREFIX}/lib64
          /usr/local/lib
          /usr/local/lib64
          /usr/lib
          /usr/lib64
          )

include("${CMAKE_CURRENT_LIST_DIR}/gnuradio-driftTarget.cmake")

INCLUDE(FindPackageHandleStandardArgs)
FIND_PACKAGE_HANDLE_STANDARD_ARGS(GR_DRIFT DEFAULT_MSG GR_DRIFT_LIBRARIES GR_DRIFT_INCLUDE_DIRS)
MARK_AS_ADVANCED(GR_DRIFT_LIBRARIES GR_DRIFT_INCLUDE_DIRS)
