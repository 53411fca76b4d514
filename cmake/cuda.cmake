# The CUDA backend: kernels live in src/kernels/cuda/*.cu (one file per kernel family) and build
# into ssm_cuda; their host-side wrappers are ordinary .cpp files of libssm that compile to
# "built without CUDA" errors when SSM_CUDA is off. The CUDA runtime is linked statically, so
# binaries need only the driver (libcuda, loaded at the first CUDA call) where they run, plus
# cuBLAS for matmul / linear, linked dynamically (libcublas.so.13 and libcublasLt.so.13 must be on
# the library path; this toolkit ships no static cuBLAS, and it would add over 500 MB per binary).
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(FATAL_ERROR "SSM_CUDA=ON but no CUDA compiler (nvcc) was found; install the CUDA toolkit or configure without -DSSM_CUDA=ON")
endif()
if(NOT CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 80 90)
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
file(GLOB_RECURSE SSM_CUDA_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/kernels/cuda/*.cu)
add_library(ssm_cuda STATIC ${SSM_CUDA_SOURCES})
target_include_directories(ssm_cuda PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(ssm_cuda PUBLIC CUDA::cudart_static CUDA::cublas)
target_compile_options(ssm_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>
  $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${SSM_WERROR}>>:--Werror=all-warnings>)
set_target_properties(ssm_cuda PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
  POSITION_INDEPENDENT_CODE ON)
