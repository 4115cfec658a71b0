# torchvision networks with seeded random weights (no internet needed), their logits on a
# fixed input and a TorchScript extractor, written at build time by
# scripts/export_torchvision.py with a python that has torch and torchvision (Debian:
# python3-torch python3-torchvision). Included by tests/CMakeLists.txt before the test
# folders, since tests/transfer and tests/cli (the transfer configs under `bachlab check`)
# both use them: the target transfer_fixtures, the folder ${transfer_fixture_dir} and
# ${transfer_have_torchvision} (1 or 0). Without such a python the tests that need them are
# skipped, each saying why.
set(BACHLAB_TORCHVISION_PYTHON "/usr/bin/python3" CACHE FILEPATH
    "Python with torch and torchvision, for the transfer-learning test fixtures")
execute_process(COMMAND "${BACHLAB_TORCHVISION_PYTHON}" -c "import torch, torchvision"
                RESULT_VARIABLE torchvision_missing OUTPUT_QUIET ERROR_QUIET)
set(transfer_fixture_dir "${CMAKE_CURRENT_BINARY_DIR}/transfer/fixtures")
set(export_script "${PROJECT_SOURCE_DIR}/scripts/export_torchvision.py")
set(transfer_have_torchvision 0)
if(torchvision_missing EQUAL 0)
  set(transfer_have_torchvision 1)
  set(resnet_files "${transfer_fixture_dir}/resnet50_seed7.pt" "${transfer_fixture_dir}/resnet50_seed7_check.pt"
                   "${transfer_fixture_dir}/resnet50_seed7.ts")
  add_custom_command(OUTPUT ${resnet_files}
    COMMAND "${BACHLAB_TORCHVISION_PYTHON}" "${export_script}" resnet50 --random-seed 7
            -o "${transfer_fixture_dir}/resnet50_seed7.pt" --check "${transfer_fixture_dir}/resnet50_seed7_check.pt"
            --torchscript "${transfer_fixture_dir}/resnet50_seed7.ts" --batch 2 --size 224
    DEPENDS "${export_script}"
    COMMENT "Exporting torchvision resnet50 (seed 7) for the transfer tests")
  set(vgg_files "${transfer_fixture_dir}/vgg16_seed7.pt" "${transfer_fixture_dir}/vgg16_seed7_check.pt")
  add_custom_command(OUTPUT ${vgg_files}
    COMMAND "${BACHLAB_TORCHVISION_PYTHON}" "${export_script}" vgg16 --random-seed 7
            -o "${transfer_fixture_dir}/vgg16_seed7.pt" --check "${transfer_fixture_dir}/vgg16_seed7_check.pt" --batch 2 --size 224
    DEPENDS "${export_script}"
    COMMENT "Exporting torchvision vgg16 (seed 7) for the transfer tests")
  # Keras-style "notop" file: the tests that do not need the 480 MB classifier load fast.
  add_custom_command(OUTPUT "${transfer_fixture_dir}/vgg16_seed7_notop.pt"
    COMMAND "${BACHLAB_TORCHVISION_PYTHON}" "${export_script}" vgg16 --random-seed 7 --notop
            -o "${transfer_fixture_dir}/vgg16_seed7_notop.pt"
    DEPENDS "${export_script}"
    COMMENT "Exporting torchvision vgg16 without its classifier (seed 7) for the transfer tests")
  add_custom_target(transfer_fixtures DEPENDS ${resnet_files} ${vgg_files} "${transfer_fixture_dir}/vgg16_seed7_notop.pt")
else()
  message(STATUS "transfer tests: ${BACHLAB_TORCHVISION_PYTHON} has no torch/torchvision "
                 "(Debian: apt-get install python3-torch python3-torchvision); the torchvision tests will be skipped")
endif()

