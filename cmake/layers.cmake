# One library per layer; each layer's sources are globbed so adding a file needs no CMake edit.
# A layer links only the layers below it (DESIGN.md), which is what enforces the layering.
function(mc_layer name dir)
  # The CUDA backend is built only when CUDA is on: files named *.cu, and every .cpp in the
  # layer's cuda/ folder (engine/cuda/: the cuDNN, cuBLAS, NCCL and runtime glue).
  file(GLOB _cpu CONFIGURE_DEPENDS ${dir}/*.cpp)
  file(GLOB _cuda CONFIGURE_DEPENDS ${dir}/*.cu ${dir}/cuda/*.cpp ${dir}/cuda/*.cu)
  list(REMOVE_ITEM _cpu ${_cuda} "")
  set(_srcs ${_cpu} ${PROJECT_SOURCE_DIR}/cmake/empty.cpp)
  if(MC_HAVE_CUDA)
    list(APPEND _srcs ${_cuda})
  endif()
  add_library(${name} STATIC ${_srcs})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
  if(MC_HAVE_CUDA)
    target_compile_definitions(${name} PUBLIC MC_HAVE_CUDA=1)
    set_target_properties(${name} PROPERTIES CUDA_SEPARABLE_COMPILATION OFF POSITION_INDEPENDENT_CODE ON)
    target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo>)
  endif()
endfunction()
